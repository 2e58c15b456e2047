// safetensors: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// tensor bytes. See https://github.com/huggingface/safetensors for the format.
//
// The reader treats every file as hostile. In order, before any tensor is allocated: the header
// length against a cap and the file; the header as UTF-8 JSON (no duplicate keys, bounded
// nesting); every entry's fields, dtype, shape (overflow-checked) and offsets (matching the
// shape); and the offsets tiling the data section exactly. Tensors are then at most 8 times the
// bytes of the file (an 8-bit integer widened to int64).
#include <fmt/format.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "lathe/error.h"
#include "lathe/io.h"
#include "src/io/file_bytes.h"
#include "src/io/untrusted_json.h"

namespace lathe {
namespace {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and is copied as it is");

// The safetensors library's own limit.
constexpr std::uint64_t kMaxHeaderBytes = 100 * 1024 * 1024;
// A header is {name: {field: [numbers]}}: three levels. A little room for unknown metadata shapes
// is not needed: __metadata__ is {string: string}.
constexpr int kMaxHeaderDepth = 3;
constexpr std::size_t kMaxAxes = 16;
// Model files are read whole; this only keeps a mistaken path (a disk image) from being read.
constexpr std::uint64_t kMaxFileBytes = std::uint64_t{1} << 40;

// A dtype of the file and what lathe loads it as.
struct FileDType {
  const char* name;
  std::size_t size;
  DType loaded;
};

constexpr FileDType kFileDTypes[] = {
    {"F32", 4, DType::Float32}, {"F64", 8, DType::Float64},  {"I64", 8, DType::Int64},
    {"F16", 2, DType::Float32}, {"BF16", 2, DType::Float32}, {"I32", 4, DType::Int64},
    {"I16", 2, DType::Int64},   {"I8", 1, DType::Int64},     {"U8", 1, DType::Int64},
    {"U16", 2, DType::Int64},   {"U32", 4, DType::Int64},    {"U64", 8, DType::Int64},
    {"BOOL", 1, DType::Int64},
};

std::string supported_dtypes() {
  std::string out;
  for (const FileDType& d : kFileDTypes) out += (out.empty() ? "" : ", ") + std::string(d.name);
  return out;
}

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
  }
  return "?";
}

struct Entry {
  std::string name;
  const FileDType* dtype = nullptr;
  Shape shape;
  std::uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& where, const std::string& name, const nlohmann::json& value) {
  const auto fail = [&](const std::string& why) {
    return Error(fmt::format("{}: tensor '{}': {}", where, detail::printable(name), why));
  };
  if (!value.is_object())
    throw fail(fmt::format("the entry is {}, not an object with dtype, shape and data_offsets",
                           detail::shown_json(value)));
  for (const auto& [key, unused] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail(fmt::format("unknown field '{}' (allowed: dtype, shape, data_offsets)",
                             detail::printable(key)));
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!value.contains(field)) throw fail(fmt::format("missing field '{}'", field));
  Entry entry;
  entry.name = name;

  const nlohmann::json& dtype = value["dtype"];
  if (!dtype.is_string())
    throw fail(fmt::format("dtype is {}, not a string", detail::shown_json(dtype)));
  for (const FileDType& d : kFileDTypes)
    if (dtype.get_ref<const std::string&>() == d.name) entry.dtype = &d;
  if (entry.dtype == nullptr)
    throw fail(fmt::format("dtype {} is not supported (lathe reads {})", detail::shown_json(dtype),
                           supported_dtypes()));

  const nlohmann::json& shape = value["shape"];
  if (!shape.is_array())
    throw fail(fmt::format("shape is {}, not an array", detail::shown_json(shape)));
  if (shape.size() > kMaxAxes)
    throw fail(fmt::format("shape has {} axes, more than {}", shape.size(), kMaxAxes));
  // Overflow-checked, ignoring zero sizes, so that a tensor with no elements cannot carry sizes
  // whose product overflows either; the bound leaves room for widening to 8-byte elements.
  std::uint64_t numel = 1, nonzero_product = 1;
  for (std::size_t axis = 0; axis < shape.size(); ++axis) {
    const nlohmann::json& d = shape[axis];
    if (!d.is_number_unsigned())
      throw fail(fmt::format("shape {}: size {} of axis {} is not a non-negative integer",
                             detail::shown_json(shape), detail::shown_json(d), axis));
    const std::uint64_t size = d.get<std::uint64_t>();
    if (size != 0 &&
        nonzero_product >
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) / 8 / size)
      throw fail(fmt::format("shape {} has more elements than lathe can address",
                             detail::shown_json(shape)));
    nonzero_product *= size == 0 ? 1 : size;
    numel *= size;
    entry.shape.push_back(static_cast<std::int64_t>(size));
  }

  const nlohmann::json& offsets = value["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw fail(fmt::format("data_offsets is {}, not two non-negative integers [begin, end]",
                           detail::shown_json(offsets)));
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  if (entry.end < entry.begin)
    throw fail(fmt::format("data_offsets [{}, {}] end before they begin", entry.begin, entry.end));
  const std::uint64_t bytes = numel * entry.dtype->size;  // < 2^63: checked above
  if (entry.end - entry.begin != bytes)
    throw fail(fmt::format("data_offsets [{}, {}] span {} bytes but {} {} needs {}", entry.begin,
                           entry.end, entry.end - entry.begin, entry.dtype->name,
                           shape_str(entry.shape), bytes));
  return entry;
}

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0)  // zero or subnormal: mantissa * 2^-24, exact in float
    return std::bit_cast<float>(
        sign | std::bit_cast<std::uint32_t>(static_cast<float>(mantissa) * 0x1p-24f));
  if (exponent == 31)  // infinity or NaN (payload kept)
    return std::bit_cast<float>(sign | 0x7f800000u | mantissa << 13);
  return std::bit_cast<float>(sign | (exponent + 112) << 23 | mantissa << 13);
}

template <class T>
T load_le(const char* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <class Source, class Target, class Convert>
void convert_elements(const char* data, Target* out, std::size_t count, Convert convert) {
  for (std::size_t i = 0; i < count; ++i)
    out[i] = convert(load_le<Source>(data + sizeof(Source) * i), i);
}

// The tensor of `e`, converted to its lathe dtype. Throws for BOOL bytes other than 0 and 1 and
// U64 values above the int64 range.
Tensor load_tensor(const std::string& where, const Entry& e, const char* data) {
  Tensor t = Tensor::empty(e.shape, e.dtype->loaded);
  const auto count = static_cast<std::size_t>(t.numel());
  const std::string_view dtype = e.dtype->name;
  const auto element_error = [&](std::size_t i, std::uint64_t value, const char* why) {
    return Error(fmt::format("{}: tensor '{}': element {} is {}, {}", where,
                             detail::printable(e.name), i, value, why));
  };
  const auto same = [](auto value, std::size_t) { return static_cast<std::int64_t>(value); };
  if (dtype == "F32" || dtype == "F64" || dtype == "I64") {
    if (count != 0) std::memcpy(t.impl()->storage->data(), data, e.end - e.begin);
  } else if (dtype == "F16") {
    convert_elements<std::uint16_t>(
        data, t.data<float>(), count,
        [](std::uint16_t bits, std::size_t) { return half_to_float(bits); });
  } else if (dtype == "BF16") {
    convert_elements<std::uint16_t>(
        data, t.data<float>(), count, [](std::uint16_t bits, std::size_t) {
          return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
        });
  } else if (dtype == "I32") {
    convert_elements<std::int32_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "I16") {
    convert_elements<std::int16_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "I8") {
    convert_elements<std::int8_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "U8") {
    convert_elements<std::uint8_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "U16") {
    convert_elements<std::uint16_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "U32") {
    convert_elements<std::uint32_t>(data, t.data<std::int64_t>(), count, same);
  } else if (dtype == "U64") {
    convert_elements<std::uint64_t>(
        data, t.data<std::int64_t>(), count, [&](std::uint64_t value, std::size_t i) {
          if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
            throw element_error(i, value, "beyond the int64 range lathe loads U64 as");
          return static_cast<std::int64_t>(value);
        });
  } else {  // BOOL
    convert_elements<std::uint8_t>(data, t.data<std::int64_t>(), count,
                                   [&](std::uint8_t value, std::size_t i) {
                                     if (value > 1)
                                       throw element_error(i, value, "but a BOOL byte is 0 or 1");
                                     return static_cast<std::int64_t>(value);
                                   });
  }
  return t;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw Error("safetensors: '__metadata__' is not a tensor name");
    const std::uint64_t bytes =
        static_cast<std::uint64_t>(tensor.numel()) * dtype_size(tensor.dtype());
    header[name] = {{"dtype", safetensors_dtype(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string file(8, '\0');
  const std::uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  file += text;
  file.reserve(file.size() + offset);
  for (const auto& [name, tensor] : tensors)
    file.append(static_cast<const char*>(tensor.impl()->storage->data()),
                static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
  write_file_atomically(path, file);
}

SafetensorsContents load_safetensors(const std::filesystem::path& path) {
  const std::vector<unsigned char> file = detail::read_raw_file(path, kMaxFileBytes);
  return parse_safetensors(detail::as_chars(file), path.string());
}

SafetensorsContents parse_safetensors(std::string_view file, const std::string& where) {
  if (file.size() < 8)
    throw Error(fmt::format(
        "{}: {} bytes is too short for a safetensors file (8-byte header length, then the header)",
        where, file.size()));
  std::uint64_t header_length = 0;
  for (int i = 0; i < 8; ++i)
    header_length |= static_cast<std::uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  if (header_length > kMaxHeaderBytes)
    throw Error(fmt::format("{}: header length {} is over the {}-byte limit", where, header_length,
                            kMaxHeaderBytes));
  if (header_length > file.size() - 8)
    throw Error(fmt::format("{}: header length {} but only {} bytes follow the length field", where,
                            header_length, file.size() - 8));
  const nlohmann::json header = detail::parse_untrusted_json(
      file.substr(8, header_length), fmt::format("{}: header", where), kMaxHeaderDepth);
  if (!header.is_object())
    throw Error(
        fmt::format("{}: header is {}, not a JSON object", where, detail::shown_json(header)));

  SafetensorsContents contents;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object())
        throw Error(fmt::format("{}: __metadata__ is {}, not an object of strings", where,
                                detail::shown_json(value)));
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string())
          throw Error(fmt::format("{}: __metadata__ '{}' is {}, not a string", where,
                                  detail::printable(key), detail::shown_json(text)));
        contents.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(where, name, value));
  }
  // The tensors must tile the data section exactly: sorted, no gaps, no overlaps, no excess.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    if (a.begin != b.begin) return a.begin < b.begin;
    return a.end != b.end ? a.end < b.end : a.name < b.name;  // names: deterministic messages
  });
  const std::uint64_t data_size = file.size() - 8 - header_length;
  std::uint64_t expected = 0;
  for (const Entry& e : entries) {
    if (e.begin != expected)
      throw Error(fmt::format(
          "{}: tensor '{}': data_offsets start at {} but the previous tensor ends at {} ({})",
          where, detail::printable(e.name), e.begin, expected,
          e.begin > expected ? "a gap" : "an overlap"));
    if (e.end > data_size)
      throw Error(fmt::format("{}: tensor '{}': data_offsets end at {} beyond the {} data bytes",
                              where, detail::printable(e.name), e.end, data_size));
    expected = e.end;
  }
  if (expected != data_size)
    throw Error(fmt::format("{}: {} data bytes but the tensors cover {} ({} trailing bytes)", where,
                            data_size, expected, data_size - expected));

  const char* data = file.data() + 8 + header_length;
  for (const Entry& e : entries) contents.tensors[e.name] = load_tensor(where, e, data + e.begin);
  return contents;
}

}  // namespace lathe
