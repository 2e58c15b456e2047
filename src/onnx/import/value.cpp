// ONNX element types on lathe's three storage dtypes, and what kernels share: attribute access
// with defaults, errors that name the node, size checks before allocating.
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "src/onnx/import/graph.h"
#include "src/onnx/import/half.h"

namespace lathe {

const char* onnx_type_name(OnnxType type) {
  switch (type) {
    case OnnxType::Float:
      return "float32";
    case OnnxType::Uint8:
      return "uint8";
    case OnnxType::Int8:
      return "int8";
    case OnnxType::Uint16:
      return "uint16";
    case OnnxType::Int16:
      return "int16";
    case OnnxType::Int32:
      return "int32";
    case OnnxType::Int64:
      return "int64";
    case OnnxType::String:
      return "string";
    case OnnxType::Bool:
      return "bool";
    case OnnxType::Float16:
      return "float16";
    case OnnxType::Double:
      return "float64";
    case OnnxType::Uint32:
      return "uint32";
    case OnnxType::Uint64:
      return "uint64";
    case OnnxType::Complex64:
      return "complex64";
    case OnnxType::Complex128:
      return "complex128";
    case OnnxType::Bfloat16:
      return "bfloat16";
    case OnnxType::Undefined:
      break;
  }
  return "undefined";
}

DType onnx_storage_dtype(OnnxType type) {
  if (type == OnnxType::Float || type == OnnxType::Float16 || type == OnnxType::Bfloat16)
    return DType::Float32;
  if (type == OnnxType::Double) return DType::Float64;
  if (type == OnnxType::Bool || onnx_detail::is_integer_type(type)) return DType::Int64;
  throw OnnxUnsupported(fmt::format("element type {} is not supported", onnx_type_name(type)));
}

}  // namespace lathe

namespace lathe::onnx_detail {

std::size_t onnx_type_size(OnnxType type) {
  switch (type) {
    case OnnxType::Uint8:
    case OnnxType::Int8:
    case OnnxType::Bool:
      return 1;
    case OnnxType::Uint16:
    case OnnxType::Int16:
    case OnnxType::Float16:
    case OnnxType::Bfloat16:
      return 2;
    case OnnxType::Float:
    case OnnxType::Int32:
    case OnnxType::Uint32:
      return 4;
    default:
      return 8;
  }
}

bool is_float_type(OnnxType type) {
  return type == OnnxType::Float || type == OnnxType::Double || type == OnnxType::Float16 ||
         type == OnnxType::Bfloat16;
}

bool is_integer_type(OnnxType type) {
  switch (type) {
    case OnnxType::Uint8:
    case OnnxType::Int8:
    case OnnxType::Uint16:
    case OnnxType::Int16:
    case OnnxType::Int32:
    case OnnxType::Int64:
    case OnnxType::Uint32:
    case OnnxType::Uint64:
      return true;
    default:
      return false;
  }
}

bool is_signed_type(OnnxType type) {
  return type == OnnxType::Int8 || type == OnnxType::Int16 || type == OnnxType::Int32 ||
         type == OnnxType::Int64 || is_float_type(type);
}

OnnxType onnx_type_of(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return OnnxType::Float;
    case DType::Float64:
      return OnnxType::Double;
    default:
      return OnnxType::Int64;
  }
}

namespace {

std::int64_t wrap_integer(std::int64_t v, OnnxType type) {
  switch (type) {
    case OnnxType::Bool:
      return v != 0;
    case OnnxType::Uint8:
      return static_cast<std::uint8_t>(v);
    case OnnxType::Int8:
      return static_cast<std::int8_t>(v);
    case OnnxType::Uint16:
      return static_cast<std::uint16_t>(v);
    case OnnxType::Int16:
      return static_cast<std::int16_t>(v);
    case OnnxType::Uint32:
      return static_cast<std::uint32_t>(v);
    case OnnxType::Int32:
      return static_cast<std::int32_t>(v);
    default:
      return v;
  }
}

}  // namespace

OnnxValue make_value(Tensor tensor, OnnxType type) {
  const DType storage = onnx_storage_dtype(type);
  if (tensor.dtype() != storage) tensor = tensor.to(storage);
  if (storage == DType::Int64 && type != OnnxType::Int64 && type != OnnxType::Uint64) {
    std::int64_t* p = tensor.data<std::int64_t>();
    for (std::int64_t k = 0, n = tensor.numel(); k < n; ++k) p[k] = wrap_integer(p[k], type);
  } else if (type == OnnxType::Float16 || type == OnnxType::Bfloat16) {
    float* p = tensor.data<float>();
    for (std::int64_t k = 0, n = tensor.numel(); k < n; ++k)
      p[k] = type == OnnxType::Float16 ? half_to_float(float_to_half(p[k]))
                                       : bfloat16_to_float(float_to_bfloat16(p[k]));
  }
  return {std::move(tensor), type};
}

OnnxValue cast_value(const OnnxValue& value, OnnxType type) {
  if (value.type == type) return value;
  const DType from = value.tensor.dtype();
  const DType to = onnx_storage_dtype(type);
  if (from != DType::Int64 && to == DType::Int64) {
    // Floating to integer: truncation toward zero; NaN and out-of-range values are undefined in
    // ONNX, here they become 0 (bool: any non-zero value, NaN included, is true).
    Tensor out = Tensor::empty(value.shape(), DType::Int64);
    std::int64_t* q = out.data<std::int64_t>();
    visit_storage(value.tensor, [&](auto tag) {
      using T = decltype(tag);
      const T* p = value.tensor.data<T>();
      for (std::int64_t k = 0, n = out.numel(); k < n; ++k) {
        const double x = static_cast<double>(p[k]);
        if (type == OnnxType::Bool)
          q[k] = x != 0;
        else if (std::isnan(x) || std::abs(x) >= 9.2e18)
          q[k] = 0;
        else
          q[k] = static_cast<std::int64_t>(x);
      }
    });
    return make_value(std::move(out), type);
  }
  if (from == DType::Int64 && value.type == OnnxType::Uint64 && to != DType::Int64) {
    Tensor out = Tensor::empty(value.shape(), to);
    const std::int64_t* p = value.tensor.data<std::int64_t>();
    visit_storage(out, [&](auto tag) {
      using T = decltype(tag);
      T* q = out.data<T>();
      for (std::int64_t k = 0, n = out.numel(); k < n; ++k)
        q[k] = static_cast<T>(static_cast<std::uint64_t>(p[k]));
    });
    return make_value(std::move(out), type);
  }
  return make_value(value.tensor.to(to), type);
}

std::vector<std::int64_t> int_values(const OpContext& ctx, const OnnxValue& value,
                                     const char* what) {
  if (value.tensor.dtype() != DType::Int64)
    ctx.fail(fmt::format("{} must be an integer tensor, got {}", what, onnx_type_name(value.type)));
  if (value.shape().size() > 1)
    ctx.fail(fmt::format("{} must be 0-D or 1-D, got shape {}", what, shape_str(value.shape())));
  const std::int64_t* p = value.tensor.data<std::int64_t>();
  return {p, p + value.tensor.numel()};
}

std::int64_t resolve_axis(const OpContext& ctx, std::int64_t axis, std::int64_t rank) {
  const std::int64_t resolved = axis < 0 ? axis + rank : axis;
  if (resolved < 0 || resolved >= rank)
    ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
  return resolved;
}

const OnnxValue& OpContext::input(std::size_t i) const {
  if (!has_input(i)) fail(fmt::format("input {} is required but not given", i));
  return *inputs_[i];
}

const Attribute* OpContext::attr(const std::string& name) const {
  auto it = node_.attributes.find(name);
  return it == node_.attributes.end() ? nullptr : &it->second;
}

std::int64_t OpContext::attr_int(const std::string& name, std::int64_t fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->kind != Attribute::Kind::Int) fail(fmt::format("attribute '{}' must be an int", name));
  return a->i;
}

double OpContext::attr_float(const std::string& name, double fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->kind == Attribute::Kind::Int) return static_cast<double>(a->i);
  if (a->kind != Attribute::Kind::Float) fail(fmt::format("attribute '{}' must be a float", name));
  return a->f;
}

std::string OpContext::attr_string(const std::string& name, const std::string& fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->kind != Attribute::Kind::String)
    fail(fmt::format("attribute '{}' must be a string", name));
  return a->s;
}

std::vector<std::int64_t> OpContext::attr_ints(const std::string& name,
                                               const std::vector<std::int64_t>& fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->kind == Attribute::Kind::Int) return {a->i};
  if (a->kind != Attribute::Kind::Ints) fail(fmt::format("attribute '{}' must be ints", name));
  return a->ints;
}

std::vector<double> OpContext::attr_floats(const std::string& name,
                                           const std::vector<double>& fallback) const {
  const Attribute* a = attr(name);
  if (!a) return fallback;
  if (a->kind == Attribute::Kind::Float) return {a->f};
  if (a->kind != Attribute::Kind::Floats) fail(fmt::format("attribute '{}' must be floats", name));
  return a->floats;
}

void OpContext::fail(const std::string& message) const {
  throw Error(fmt::format("node '{}' ({}): {}", node_.name, node_.op_type, message));
}

void OpContext::unsupported(const std::string& message) const {
  throw OnnxUnsupported(fmt::format("node '{}' ({}): {}", node_.name, node_.op_type, message));
}

void OpContext::check_size(const Shape& shape, OnnxType type) const {
  std::uint64_t elements = 1;
  for (std::int64_t d : shape) {
    if (d < 0) fail(fmt::format("negative dimension in output shape {}", shape_str(shape)));
    if (d != 0 && elements > std::numeric_limits<std::uint64_t>::max() / d)
      fail(fmt::format("output shape {} overflows", shape_str(shape)));
    elements *= static_cast<std::uint64_t>(d);
  }
  const std::uint64_t bytes = elements * dtype_size(onnx_storage_dtype(type));
  if (elements > (1ull << 60) || bytes > limits_.max_tensor_bytes)
    fail(fmt::format("output shape {} needs {} bytes, over the limit of {}", shape_str(shape),
                     bytes, limits_.max_tensor_bytes));
}

}  // namespace lathe::onnx_detail
