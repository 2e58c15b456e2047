#pragma once
// Internal: what the nn operator files (matmul, conv, pool, normalization, resize) share: input
// checks, padding by concatenation, and the sliding-window geometry of convolution and pooling.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

using Ints = std::vector<std::int64_t>;

// Bound on window attributes (strides, dilations, pads, sizes) so that their products stay far
// from int64 overflow.
inline constexpr std::int64_t kMaxWindowValue = std::int64_t{1} << 30;

inline bool wants_output(const OpContext& ctx, std::size_t i) {
  return i < ctx.output_count() && !ctx.node().outputs[i].empty();
}

inline bool is_float_storage(const OnnxValue& v) {
  return v.tensor.dtype() != DType::Int64;
}

inline void require_float(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (!is_float_type(v.type))
    ctx.fail(
        fmt::format("{} must be a floating-point tensor, got {}", what, onnx_type_name(v.type)));
}

inline void require_same_storage(const OpContext& ctx, const OnnxValue& a, const OnnxValue& b,
                                 const char* what) {
  if (a.tensor.dtype() != b.tensor.dtype())
    ctx.fail(fmt::format("{} is {}, but the input is {}", what, onnx_type_name(b.type),
                         onnx_type_name(a.type)));
}

inline void require_rank(const OpContext& ctx, const OnnxValue& v, std::size_t minimum,
                         const char* what) {
  if (v.shape().size() < minimum)
    ctx.fail(fmt::format("{} must have at least {} axes, got shape {}", what, minimum,
                         shape_str(v.shape())));
}

inline Shape tail(const Shape& s, std::size_t from) {
  return Shape(s.begin() + from, s.end());
}

// `x` with `value` added before and after along `axis` (a concatenation, which keeps the
// gradient).
inline Tensor pad_with(const OpContext& ctx, const Tensor& x, std::int64_t axis,
                       std::int64_t before, std::int64_t after, double value = 0) {
  if (before == 0 && after == 0) return x;
  Shape total = x.shape();
  total[static_cast<std::size_t>(axis)] += before + after;
  ctx.check_size(total, onnx_type_of(x.dtype()));
  const auto filler = [&](std::int64_t n) {
    Shape s = x.shape();
    s[static_cast<std::size_t>(axis)] = n;
    return Tensor::full(s, value, x.dtype());
  };
  std::vector<Tensor> parts;
  if (before > 0) parts.push_back(filler(before));
  parts.push_back(x);
  if (after > 0) parts.push_back(filler(after));
  return concat(parts, axis);
}

// ---------------------------------------------------------------------------------------------
// Sliding windows: Conv, ConvTranspose, MaxPool, AveragePool

struct Window {
  Ints in, kernel, strides, dilations, begin, end, out;  // per spatial axis
  std::size_t rank() const { return kernel.size(); }
  std::int64_t extent(std::size_t d) const { return (kernel[d] - 1) * dilations[d] + 1; }
  bool symmetric() const { return begin == end; }
  bool all(const Ints& v, std::int64_t value) const {
    return std::all_of(v.begin(), v.end(), [&](std::int64_t x) { return x == value; });
  }
};

// A per-spatial-axis attribute: `rank` values, each in [minimum, kMaxWindowValue].
inline Ints window_attr(const OpContext& ctx, const char* name, std::size_t rank,
                        std::int64_t fallback, std::int64_t minimum) {
  Ints v = ctx.attr_ints(name, {});
  if (v.empty()) v.assign(rank, fallback);
  if (v.size() != rank)
    ctx.fail(fmt::format("{} has {} values, expected {}", name, v.size(), rank));
  for (const auto x : v)
    if (x < minimum || x > kMaxWindowValue)
      ctx.fail(fmt::format("{} value {} is out of range (at least {})", name, x, minimum));
  return v;
}

// The explicit pads attribute, split into begin and end.
inline void read_pads(const OpContext& ctx, Window& w) {
  const Ints pads = window_attr(ctx, "pads", 2 * w.rank(), 0, 0);
  w.begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(w.rank()));
  w.end.assign(pads.begin() + static_cast<std::ptrdiff_t>(w.rank()), pads.end());
}

// Strides, dilations, pads and output size of a convolution or pooling window over the spatial
// axes of `x` ([N, C, spatial...]).
inline Window make_window(const OpContext& ctx, const Shape& x, const Ints& kernel,
                          bool ceil_mode) {
  Window w;
  const std::size_t rank = kernel.size();
  w.in = tail(x, 2);
  w.kernel = kernel;
  for (const auto k : kernel)
    if (k < 1 || k > kMaxWindowValue) ctx.fail(fmt::format("kernel size {} is out of range", k));
  w.strides = window_attr(ctx, "strides", rank, 1, 1);
  w.dilations = window_attr(ctx, "dilations", rank, 1, 1);
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  w.out.resize(rank);
  if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    w.begin.resize(rank), w.end.resize(rank);
    for (std::size_t d = 0; d < rank; ++d) {
      w.out[d] = (w.in[d] + w.strides[d] - 1) / w.strides[d];
      const std::int64_t total =
          std::max<std::int64_t>(0, (w.out[d] - 1) * w.strides[d] + w.extent(d) - w.in[d]);
      w.begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.end[d] = total - w.begin[d];
    }
    return w;
  }
  if (auto_pad == "VALID") {
    w.begin.assign(rank, 0), w.end.assign(rank, 0);
  } else if (auto_pad == "NOTSET" || auto_pad.empty()) {
    read_pads(ctx, w);
  } else {
    ctx.fail(fmt::format("unknown auto_pad '{}'", auto_pad));
  }
  for (std::size_t d = 0; d < rank; ++d) {
    const std::int64_t span = w.in[d] + w.begin[d] + w.end[d] - w.extent(d);
    if (span < 0)
      ctx.fail(fmt::format("input {} (padded) is smaller than the window ({} on axis {})",
                           shape_str(x), w.extent(d), d + 2));
    w.out[d] = span / w.strides[d] + 1;
    if (ceil_mode && span % w.strides[d] != 0) {
      ++w.out[d];
      // As PyTorch: the last window must start inside the input or its left padding.
      if ((w.out[d] - 1) * w.strides[d] >= w.in[d] + w.begin[d]) --w.out[d];
    }
  }
  return w;
}

inline Shape window_output_shape(const Shape& x, std::int64_t channels, const Window& w) {
  Shape out{x[0], channels};
  out.insert(out.end(), w.out.begin(), w.out.end());
  return out;
}

// Offsets (per axis, dilation applied) of every kernel tap, in row-major tap order.
inline std::vector<Ints> kernel_taps(const Window& w) {
  std::vector<Ints> taps;
  for_each_index(Shape(w.kernel.begin(), w.kernel.end()), [&](const Ints& index) {
    Ints t(w.rank());
    for (std::size_t d = 0; d < w.rank(); ++d) t[d] = index[d] * w.dilations[d];
    taps.push_back(t);
  });
  return taps;
}

// The flat offset of input position start + tap inside a plane, or -1 outside it.
inline std::int64_t tap_offset(const Window& w, const Ints& start, const Ints& tap,
                               const Ints& strides) {
  std::int64_t offset = 0;
  for (std::size_t d = 0; d < start.size(); ++d) {
    const std::int64_t p = start[d] + tap[d];
    if (p < 0 || p >= w.in[d]) return -1;
    offset += p * strides[d];
  }
  return offset;
}

// Calls f(out_offset, start) for every output position of a plane, start being where its window
// begins in the input (padding applied).
template <class F>
void for_each_window(const Window& w, F&& f) {
  std::int64_t at = 0;
  Ints start(w.rank());
  for_each_index(Shape(w.out.begin(), w.out.end()), [&](const Ints& o) {
    for (std::size_t d = 0; d < w.rank(); ++d) start[d] = o[d] * w.strides[d] - w.begin[d];
    f(at++, static_cast<const Ints&>(start));
  });
}

}  // namespace lathe::onnx_detail
