// TensorProto and .npy files to OnnxValue and back. A tensor's bytes are untrusted: the dims are
// checked for sign and overflow, the byte count against OnnxLimits, and the data actually present
// against the count the dims promise, before anything is allocated.
#include "src/onnx/import/tensor_proto.h"

#include <bit>
#include <cstring>
#include <fstream>
#include <limits>
#include <regex>

#include "lathe/safetensors.h"
#include "src/io/file_bytes.h"
#include "src/onnx/import/graph.h"
#include "src/onnx/import/half.h"

namespace lathe::onnx_detail {

static_assert(std::endian::native == std::endian::little, "ONNX raw_data is little-endian");

std::int64_t checked_element_count(const google::protobuf::RepeatedField<std::int64_t>& dims,
                                   std::size_t element_size, std::uint64_t max_bytes,
                                   const std::string& what) {
  std::uint64_t count = 1;
  for (std::int64_t d : dims) {
    if (d < 0) throw Error(fmt::format("{}: negative dimension {}", what, d));
    if (d != 0 && count > (std::uint64_t{1} << 62) / static_cast<std::uint64_t>(d))
      throw Error(fmt::format("{}: dimensions overflow", what));
    count *= static_cast<std::uint64_t>(d);
  }
  if (count * element_size > max_bytes)
    throw Error(fmt::format("{}: {} elements of {} bytes exceed the limit of {} bytes", what, count,
                            element_size, max_bytes));
  return static_cast<std::int64_t>(count);
}

namespace {

// The bytes an external_data entry points to, confined to the model's folder (CVE-2022-25882 was
// a path traversal through exactly this field).
std::string read_external_data(const onnx::TensorProto& proto, const std::filesystem::path& folder,
                               std::uint64_t expected_bytes, const std::string& what) {
  std::string location;
  std::uint64_t offset = 0;
  std::optional<std::uint64_t> length;
  for (const auto& entry : proto.external_data()) {
    try {
      if (entry.key() == "location") location = entry.value();
      if (entry.key() == "offset") offset = std::stoull(entry.value());
      if (entry.key() == "length") length = std::stoull(entry.value());
    } catch (const std::exception&) {
      throw Error(fmt::format("{}: external data {} '{}' is not a number", what, entry.key(),
                              entry.value()));
    }
  }
  if (folder.empty())
    throw Error(
        fmt::format("{}: stores its data in an external file, which is only read for a "
                    "model loaded from a file",
                    what));
  const std::filesystem::path relative(location);
  if (location.empty() || relative.is_absolute() || relative.has_root_name())
    throw Error(
        fmt::format("{}: external data location '{}' must be a relative path inside the "
                    "model's folder",
                    what, location));
  for (const auto& part : relative)
    if (part == "..")
      throw Error(
          fmt::format("{}: external data location '{}' leaves the model's folder", what, location));
  std::error_code ec;
  const auto base = std::filesystem::weakly_canonical(folder, ec);
  const auto target = std::filesystem::weakly_canonical(folder / relative, ec);
  const auto [end, _] = std::mismatch(base.begin(), base.end(), target.begin(), target.end());
  if (ec || end != base.end())
    throw Error(
        fmt::format("{}: external data location '{}' leaves the model's folder (through a "
                    "link)",
                    what, location));
  if (length && *length != expected_bytes)
    throw Error(
        fmt::format("{}: external data length {} does not match the {} bytes its shape "
                    "needs",
                    what, *length, expected_bytes));
  std::ifstream in(target, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open external data '{}'", what, location));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::uint64_t>(in.tellg());
  if (offset > size || size - offset < expected_bytes)
    throw Error(fmt::format("{}: external data '{}' has {} bytes, fewer than offset {} + {}", what,
                            location, size, offset, expected_bytes));
  std::string bytes(expected_bytes, '\0');
  in.seekg(static_cast<std::streamoff>(offset));
  in.read(bytes.data(), static_cast<std::streamsize>(expected_bytes));
  if (!in) throw Error(fmt::format("{}: reading external data '{}' failed", what, location));
  return bytes;
}

template <class Source, class Convert>
void fill_from(const Tensor& out, const Source& source, Convert convert) {
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    T* q = const_cast<Tensor&>(out).data<T>();
    for (std::int64_t k = 0; k < out.numel(); ++k) q[k] = static_cast<T>(convert(source[k]));
  });
}

// Decodes little-endian raw bytes of `type` into `out`.
void fill_from_raw(const Tensor& out, const char* raw, OnnxType type) {
  auto load = [raw](auto tag, std::int64_t k) {
    decltype(tag) v;
    std::memcpy(&v, raw + k * sizeof(v), sizeof(v));
    return v;
  };
  visit_storage(out, [&](auto storage_tag) {
    using T = decltype(storage_tag);
    T* q = const_cast<Tensor&>(out).data<T>();
    for (std::int64_t k = 0, n = out.numel(); k < n; ++k) {
      switch (type) {
        case OnnxType::Float:
          q[k] = static_cast<T>(load(float{}, k));
          break;
        case OnnxType::Double:
          q[k] = static_cast<T>(load(double{}, k));
          break;
        case OnnxType::Float16:
          q[k] = static_cast<T>(half_to_float(load(std::uint16_t{}, k)));
          break;
        case OnnxType::Bfloat16:
          q[k] = static_cast<T>(bfloat16_to_float(load(std::uint16_t{}, k)));
          break;
        case OnnxType::Uint8:
          q[k] = static_cast<T>(load(std::uint8_t{}, k));
          break;
        case OnnxType::Bool:
          q[k] = static_cast<T>(load(std::uint8_t{}, k) != 0);
          break;
        case OnnxType::Int8:
          q[k] = static_cast<T>(load(std::int8_t{}, k));
          break;
        case OnnxType::Uint16:
          q[k] = static_cast<T>(load(std::uint16_t{}, k));
          break;
        case OnnxType::Int16:
          q[k] = static_cast<T>(load(std::int16_t{}, k));
          break;
        case OnnxType::Int32:
          q[k] = static_cast<T>(load(std::int32_t{}, k));
          break;
        case OnnxType::Uint32:
          q[k] = static_cast<T>(load(std::uint32_t{}, k));
          break;
        default:
          q[k] = static_cast<T>(load(std::int64_t{}, k));
          break;  // int64, uint64
      }
    }
  });
}

}  // namespace

OnnxValue tensor_from_proto(const onnx::TensorProto& proto, const std::filesystem::path& folder,
                            const OnnxLimits& limits, const std::string& what) {
  if (!onnx::TensorProto::DataType_IsValid(proto.data_type()) || proto.data_type() == 0)
    throw Error(fmt::format("{}: unknown element type {}", what, proto.data_type()));
  const auto type = static_cast<OnnxType>(proto.data_type());
  if (proto.has_segment()) throw OnnxUnsupported(fmt::format("{}: segmented tensors", what));
  DType storage;
  try {
    storage = onnx_storage_dtype(type);
  } catch (const OnnxUnsupported& e) {
    throw OnnxUnsupported(fmt::format("{}: {}", what, e.what()));
  }
  const std::size_t element_size = onnx_type_size(type);
  const std::int64_t count = checked_element_count(
      proto.dims(), std::max(element_size, dtype_size(storage)), limits.max_tensor_bytes, what);
  Shape shape(proto.dims().begin(), proto.dims().end());
  Tensor out = Tensor::empty(shape, storage);
  auto require_count = [&](std::int64_t given, const char* field) {
    if (given != count)
      throw Error(fmt::format("{}: {} holds {} values but shape {} needs {}", what, field, given,
                              shape_str(shape), count));
  };
  const bool external = proto.data_location() == onnx::TensorProto::EXTERNAL;
  if (external || proto.has_raw_data()) {
    const std::uint64_t expected = static_cast<std::uint64_t>(count) * element_size;
    const std::string bytes =
        external ? read_external_data(proto, folder, expected, what) : std::string();
    const std::string& raw = external ? bytes : proto.raw_data();
    if (raw.size() != expected)
      throw Error(fmt::format("{}: raw_data has {} bytes but shape {} of {} needs {}", what,
                              raw.size(), shape_str(shape), onnx_type_name(type), expected));
    fill_from_raw(out, raw.data(), type);
    return make_value(std::move(out), type);
  }
  switch (type) {
    case OnnxType::Float:
      require_count(proto.float_data_size(), "float_data");
      fill_from(out, proto.float_data(), [](float v) { return v; });
      break;
    case OnnxType::Double:
      require_count(proto.double_data_size(), "double_data");
      fill_from(out, proto.double_data(), [](double v) { return v; });
      break;
    case OnnxType::Int64:
      require_count(proto.int64_data_size(), "int64_data");
      fill_from(out, proto.int64_data(), [](std::int64_t v) { return v; });
      break;
    case OnnxType::Uint32:
    case OnnxType::Uint64:
      require_count(proto.uint64_data_size(), "uint64_data");
      fill_from(out, proto.uint64_data(),
                [](std::uint64_t v) { return static_cast<std::int64_t>(v); });
      break;
    case OnnxType::Float16:
      require_count(proto.int32_data_size(), "int32_data");
      fill_from(out, proto.int32_data(),
                [](std::int32_t v) { return half_to_float(static_cast<std::uint16_t>(v)); });
      break;
    case OnnxType::Bfloat16:
      require_count(proto.int32_data_size(), "int32_data");
      fill_from(out, proto.int32_data(),
                [](std::int32_t v) { return bfloat16_to_float(static_cast<std::uint16_t>(v)); });
      break;
    default:  // int32, int16, int8, uint16, uint8, bool
      require_count(proto.int32_data_size(), "int32_data");
      fill_from(out, proto.int32_data(),
                [](std::int32_t v) { return static_cast<std::int64_t>(v); });
      break;
  }
  return make_value(std::move(out), type);
}

void tensor_to_proto(const OnnxValue& value, onnx::TensorProto& proto) {
  proto.set_data_type(static_cast<int>(value.type));
  for (std::int64_t d : value.shape()) proto.add_dims(d);
  const std::int64_t n = value.tensor.numel();
  std::string raw(static_cast<std::size_t>(n) * onnx_type_size(value.type), '\0');
  char* out = raw.data();
  auto store = [out](std::int64_t k, auto v) { std::memcpy(out + k * sizeof(v), &v, sizeof(v)); };
  visit_storage(value.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = value.tensor.data<T>();
    for (std::int64_t k = 0; k < n; ++k) {
      const T v = p[k];
      switch (value.type) {
        case OnnxType::Float:
          store(k, static_cast<float>(v));
          break;
        case OnnxType::Double:
          store(k, static_cast<double>(v));
          break;
        case OnnxType::Float16:
          store(k, float_to_half(static_cast<float>(v)));
          break;
        case OnnxType::Bfloat16:
          store(k, float_to_bfloat16(static_cast<float>(v)));
          break;
        case OnnxType::Uint8:
        case OnnxType::Bool:
          store(k, static_cast<std::uint8_t>(v));
          break;
        case OnnxType::Int8:
          store(k, static_cast<std::int8_t>(v));
          break;
        case OnnxType::Uint16:
          store(k, static_cast<std::uint16_t>(v));
          break;
        case OnnxType::Int16:
          store(k, static_cast<std::int16_t>(v));
          break;
        case OnnxType::Int32:
          store(k, static_cast<std::int32_t>(v));
          break;
        case OnnxType::Uint32:
          store(k, static_cast<std::uint32_t>(v));
          break;
        default:
          store(k, static_cast<std::int64_t>(v));
          break;
      }
    }
  });
  proto.set_raw_data(std::move(raw));
}

namespace {

// A NumPy .npy file (format 1.0-3.0): the header's dict, then C-order little-endian data.
OnnxValue read_npy(const std::string& bytes, const std::filesystem::path& path,
                   const OnnxLimits& limits) {
  const std::string what = path.string();
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    throw Error(fmt::format("{}: not a .npy file (no \\x93NUMPY magic)", what));
  const int major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_start = 10;
  } else {
    if (bytes.size() < 12) throw Error(fmt::format("{}: truncated .npy header", what));
    std::uint32_t len;
    std::memcpy(&len, bytes.data() + 8, 4);
    header_len = len;
    header_start = 12;
  }
  if (header_start + header_len > bytes.size())
    throw Error(fmt::format("{}: truncated .npy header", what));
  const std::string header = bytes.substr(header_start, header_len);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'descr':\\s*'([<|>=]?)([a-z])(\\d+)'")))
    throw Error(fmt::format("{}: .npy header has no descr: {}", what, header));
  const std::string order = m[1], kind = m[2], width = m[3];
  if (order == ">") throw Error(fmt::format("{}: big-endian .npy data is not supported", what));
  const std::map<std::string, OnnxType> types = {
      {"f4", OnnxType::Float},  {"f8", OnnxType::Double}, {"f2", OnnxType::Float16},
      {"i8", OnnxType::Int64},  {"i4", OnnxType::Int32},  {"i2", OnnxType::Int16},
      {"i1", OnnxType::Int8},   {"u1", OnnxType::Uint8},  {"u2", OnnxType::Uint16},
      {"u4", OnnxType::Uint32}, {"u8", OnnxType::Uint64}, {"b1", OnnxType::Bool}};
  const auto type_it = types.find(kind + width);
  if (type_it == types.end())
    throw Error(fmt::format("{}: .npy element type '{}{}' is not supported", what, kind, width));
  if (std::regex_search(header, std::regex("'fortran_order':\\s*True")))
    throw Error(fmt::format("{}: Fortran-order .npy data is not supported", what));
  if (!std::regex_search(header, m, std::regex("'shape':\\s*\\(([^)]*)\\)")))
    throw Error(fmt::format("{}: .npy header has no shape: {}", what, header));
  google::protobuf::RepeatedField<std::int64_t> dims;
  const std::string shape_text = m[1];
  const std::regex number("\\d+");
  for (std::sregex_iterator it(shape_text.begin(), shape_text.end(), number), end; it != end;
       ++it) {
    if (it->str().size() > 18) throw Error(fmt::format("{}: .npy dimension too large", what));
    dims.Add(std::stoll(it->str()));
  }
  const OnnxType type = type_it->second;
  const std::int64_t count = checked_element_count(
      dims, std::max<std::size_t>(8, onnx_type_size(type)), limits.max_tensor_bytes, what);
  const std::size_t data_start = header_start + header_len;
  const std::uint64_t expected = static_cast<std::uint64_t>(count) * onnx_type_size(type);
  if (bytes.size() - data_start != expected)
    throw Error(fmt::format("{}: .npy data has {} bytes but shape ({}) needs {}", what,
                            bytes.size() - data_start, shape_text, expected));
  Tensor out = Tensor::empty(Shape(dims.begin(), dims.end()), onnx_storage_dtype(type));
  fill_from_raw(out, bytes.data() + data_start, type);
  return make_value(std::move(out), type);
}

}  // namespace

}  // namespace lathe::onnx_detail

namespace lathe {

OnnxValue read_onnx_tensor_file(const std::filesystem::path& path, const OnnxLimits& limits) {
  const auto raw = detail::read_raw_file(path, limits.max_tensor_bytes + 4096);
  std::string bytes(detail::as_chars(raw));
  if (bytes.rfind("\x93NUMPY", 0) == 0) return onnx_detail::read_npy(bytes, path, limits);
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes))
    throw Error(
        fmt::format("{}: not a serialized ONNX TensorProto (or a .npy file)", path.string()));
  const std::string what = fmt::format("{} (tensor '{}')", path.string(), proto.name());
  return onnx_detail::tensor_from_proto(proto, {}, limits, what);
}

void write_onnx_tensor_file(const std::filesystem::path& path, const OnnxValue& value,
                            const std::string& name) {
  onnx::TensorProto proto;
  proto.set_name(name);
  onnx_detail::tensor_to_proto(value, proto);
  write_file_atomically(path, proto.SerializeAsString());
}

}  // namespace lathe
