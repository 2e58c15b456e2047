#pragma once
// Internal: dtype and device dispatch for kernels, and the checks every op shares.
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/tensor.h"

namespace lathe::detail {

// Calls f(T{}) with T the C++ type of a floating dtype; other dtypes are an error naming the op.
template <class F>
decltype(auto) dispatch_floating(DType dtype, const char* op, F&& f) {
  switch (dtype) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      throw Error(fmt::format("{}: dtype {} is not supported; expected float32 or float64", op,
                              dtype_name(dtype)));
  }
}

// Every kernel runs on the CPU today; a CUDA backend adds its own branch where this is called.
inline void require_cpu(const char* op, const Tensor& t) {
  if (t.device() != Device::CPU)
    throw Error(fmt::format("{}: no kernel for device {}", op, device_name(t.device())));
}

inline void require_defined(const char* op, const Tensor& t, const char* what = "input") {
  if (!t.defined()) throw Error(fmt::format("{}: {} is an undefined tensor", op, what));
}

inline void require_same_dtype(const char* op, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw Error(fmt::format("{}: dtypes differ: {} {} and {} {}", op, dtype_name(a.dtype()),
                            shape_str(a.shape()), dtype_name(b.dtype()), shape_str(b.shape())));
}

inline void require_floating(const char* op, const Tensor& a) {
  require_defined(op, a);
  require_cpu(op, a);
  if (!is_floating(a.dtype()))
    throw Error(fmt::format("{}: dtype {} is not supported; expected float32 or float64", op,
                            dtype_name(a.dtype())));
}

// Resolves a possibly negative axis against a rank; errors name the op and the shape.
inline std::int64_t normalize_axis(const char* op, std::int64_t axis, const Shape& shape) {
  const auto rank = static_cast<std::int64_t>(shape.size());
  const std::int64_t resolved = axis < 0 ? axis + rank : axis;
  if (resolved < 0 || resolved >= rank)
    throw Error(fmt::format("{}: axis {} is out of range for shape {} (allowed {}..{})", op, axis,
                            shape_str(shape), -rank, rank - 1));
  return resolved;
}

// Views a contiguous shape as [outer, extent, inner] around one axis.
struct AxisView {
  std::int64_t outer = 1, extent = 1, inner = 1;
};
inline AxisView axis_view(const Shape& shape, std::int64_t axis) {
  AxisView v;
  for (std::int64_t i = 0; i < axis; ++i) v.outer *= shape[i];
  v.extent = shape[axis];
  for (std::size_t i = axis + 1; i < shape.size(); ++i) v.inner *= shape[i];
  return v;
}

}  // namespace lathe::detail
