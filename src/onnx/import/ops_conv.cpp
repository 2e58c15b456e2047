// ONNX operators: convolution (Conv, ConvTranspose). Float Conv with 1-D or 2-D windows runs on
// lathe's differentiable conv2d; 3-D windows and ConvTranspose run generic loops.
#include <algorithm>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"
#include "src/onnx/import/spatial.h"

namespace lathe::onnx_detail {
namespace {

struct ConvDims {
  std::int64_t n, c, o, groups;
};

template <class T>
void conv_loop(const ConvDims& s, const Window& w, const T* x, const T* wt, const T* bias, T* y) {
  const std::int64_t in_plane = shape_numel(w.in), out_plane = shape_numel(w.out);
  const std::int64_t k_plane = shape_numel(w.kernel);
  const std::int64_t cg = s.c / s.groups, og = s.o / s.groups;
  const auto taps = kernel_taps(w);
  const auto strides = contiguous_strides(w.in);
  std::vector<std::int64_t> offsets(taps.size());
  for (std::int64_t n = 0; n < s.n; ++n)
    for_each_window(w, [&](std::int64_t at, const Ints& start) {
      for (std::size_t t = 0; t < taps.size(); ++t)
        offsets[t] = tap_offset(w, start, taps[t], strides);
      for (std::int64_t oc = 0; oc < s.o; ++oc) {
        const std::int64_t g = oc / og;
        T acc = bias ? bias[oc] : T(0);
        for (std::int64_t ic = 0; ic < cg; ++ic) {
          const T* xp = x + (n * s.c + g * cg + ic) * in_plane;
          const T* wp = wt + (oc * cg + ic) * k_plane;
          for (std::size_t t = 0; t < taps.size(); ++t)
            if (offsets[t] >= 0) acc += xp[offsets[t]] * wp[t];
        }
        y[(n * s.o + oc) * out_plane + at] = acc;
      }
    });
}

// Conv through lathe's conv2d (1-D as a 2-D image of height 1; asymmetric pads as zeros
// concatenated to the input).
Tensor conv_lathe(const OpContext& ctx, const Tensor& x, const Tensor& wt, const Tensor& bias,
                  const Window& w, std::int64_t groups) {
  Tensor x4 = x, w4 = wt;
  Window v = w;
  if (w.rank() == 1) {
    const Shape xs = x.shape(), ws = wt.shape();
    x4 = reshape(x, {xs[0], xs[1], 1, xs[2]});
    w4 = reshape(wt, {ws[0], ws[1], 1, ws[2]});
    // The added height axis: one row, no padding.
    v.begin.insert(v.begin.begin(), 0);
    v.end.insert(v.end.begin(), 0);
    v.strides.insert(v.strides.begin(), 1);
    v.dilations.insert(v.dilations.begin(), 1);
  }
  Conv2dOptions options;
  options.groups = groups;
  for (std::size_t d = 0; d < 2; ++d) {
    options.stride[d] = v.strides[d];
    options.dilation[d] = v.dilations[d];
    const std::int64_t common = std::min(v.begin[d], v.end[d]);
    options.padding[d] = common;
    x4 =
        pad_with(ctx, x4, static_cast<std::int64_t>(d) + 2, v.begin[d] - common, v.end[d] - common);
  }
  Tensor y = conv2d(x4, w4, bias, options);
  if (w.rank() == 1) y = reshape(y, {y.size(0), y.size(1), y.size(3)});
  return y;
}

// Checks Conv's or ConvTranspose's input, weight and bias; returns the kernel's spatial shape.
Ints conv_kernel(const OpContext& ctx, const OnnxValue& x, const OnnxValue& wt,
                 const OnnxValue* bias, std::int64_t bias_size) {
  require_float(ctx, x, "X");
  require_rank(ctx, x, 3, "X");
  require_same_storage(ctx, x, wt, "W");
  if (wt.shape().size() != x.shape().size())
    ctx.fail(fmt::format("W {} must have the rank of X {}", shape_str(wt.shape()),
                         shape_str(x.shape())));
  Ints kernel = tail(wt.shape(), 2);
  for (const auto k : kernel)
    if (k < 1) ctx.fail(fmt::format("W {} has an empty kernel", shape_str(wt.shape())));
  const Ints attr = ctx.attr_ints("kernel_shape", {});
  if (!attr.empty() && attr != kernel)
    ctx.fail(
        fmt::format("kernel_shape {} does not match W {}", shape_str(attr), shape_str(wt.shape())));
  if (bias) {
    require_same_storage(ctx, x, *bias, "B");
    if (bias->shape() != Shape{bias_size})
      ctx.fail(fmt::format("B {} must be [{}]", shape_str(bias->shape()), bias_size));
  }
  return kernel;
}

std::int64_t group_attr(const OpContext& ctx, std::int64_t c, std::int64_t per_group) {
  const std::int64_t groups = ctx.attr_int("group", 1);
  if (groups < 1 || c % groups != 0 || c / groups != per_group)
    ctx.fail(fmt::format("group = {} does not fit {} input channels and W's {} per group", groups,
                         c, per_group));
  return groups;
}

std::vector<OnnxValue> conv_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const OnnxValue& wt = ctx.input(1);
  const OnnxValue* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const std::int64_t o = wt.shape().empty() ? 0 : wt.shape()[0];
  const Ints kernel = conv_kernel(ctx, x, wt, bias, o);
  const ConvDims s{x.shape()[0], x.shape()[1], o, group_attr(ctx, x.shape()[1], wt.shape()[1])};
  if (o % s.groups != 0)
    ctx.fail(fmt::format("group = {} does not divide the {} output channels", s.groups, o));
  const Window w = make_window(ctx, x.shape(), kernel, false);
  const Shape out = window_output_shape(x.shape(), o, w);
  ctx.check_size(out, x.type);
  if (w.rank() <= 2 && shape_numel(out) > 0 && x.shape()[1] > 0)
    return {make_value(
        conv_lathe(ctx, x.tensor, wt.tensor, bias ? bias->tensor : Tensor(), w, s.groups), x.type)};
  Tensor y = new_tensor(ctx, out, x.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    conv_loop<T>(s, w, x.tensor.data<T>(), wt.tensor.data<T>(),
                 bias ? bias->tensor.data<T>() : nullptr, y.data<T>());
  });
  return {make_value(y, x.type)};
}

// Python's floor division, for ConvTranspose's (possibly negative) total padding.
std::int64_t floor_div(std::int64_t a, std::int64_t b) {
  return a / b - ((a % b != 0) && ((a < 0) != (b < 0)) ? 1 : 0);
}

// ConvTranspose's window: `out` is the output size, `begin` how many leading positions of the
// full (unpadded) result are cut off (negative: zeros added in front).
Window transpose_window(const OpContext& ctx, const Shape& x, const Ints& kernel) {
  Window w;
  const std::size_t rank = kernel.size();
  w.in = tail(x, 2);
  w.kernel = kernel;
  w.strides = window_attr(ctx, "strides", rank, 1, 1);
  w.dilations = window_attr(ctx, "dilations", rank, 1, 1);
  const Ints output_padding = window_attr(ctx, "output_padding", rank, 0, 0);
  const std::string auto_pad = ctx.attr_string("auto_pad", "NOTSET");
  Ints output_shape = ctx.attr_ints("output_shape", {});
  if (output_shape.size() == rank + 2) output_shape = tail(output_shape, 2);
  if (!output_shape.empty() && output_shape.size() != rank)
    ctx.fail(fmt::format("output_shape has {} values, expected {}", output_shape.size(), rank));
  const bool same = auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER";
  if (!same && auto_pad != "NOTSET" && auto_pad != "VALID" && !auto_pad.empty())
    ctx.fail(fmt::format("unknown auto_pad '{}'", auto_pad));
  if (!same && output_shape.empty()) {
    if (auto_pad == "VALID")
      w.begin.assign(rank, 0), w.end.assign(rank, 0);
    else
      read_pads(ctx, w);
  }
  w.out.resize(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    const std::int64_t full = w.strides[d] * (w.in[d] - 1) + output_padding[d] + w.extent(d);
    if (same || !output_shape.empty()) {
      const std::int64_t target = same ? w.in[d] * w.strides[d] : output_shape[d];
      if (target < 0 || target > kMaxWindowValue * kMaxWindowValue)
        ctx.fail(fmt::format("output_shape value {} is out of range", target));
      const std::int64_t total = full - target;
      w.begin.push_back(auto_pad == "SAME_UPPER" ? floor_div(total, 2)
                                                 : total - floor_div(total, 2));
      w.end.push_back(total - w.begin.back());
      w.out[d] = target;
    } else {
      w.out[d] = full - w.begin[d] - w.end[d];
      if (w.out[d] < 0) ctx.fail(fmt::format("pads leave no output on axis {}", d + 2));
    }
  }
  return w;
}

template <class T>
void conv_transpose_loop(const ConvDims& s, const Window& w, const T* x, const T* wt, const T* bias,
                         T* y) {
  const std::int64_t in_plane = shape_numel(w.in), out_plane = shape_numel(w.out);
  const std::int64_t k_plane = shape_numel(w.kernel);
  const std::int64_t cg = s.c / s.groups, og = s.o / s.groups;
  const auto taps = kernel_taps(w);
  Window out_view = w;  // positions are bounds-checked against the output
  out_view.in = w.out;
  const auto strides = contiguous_strides(w.out);
  for (std::int64_t n = 0; n < s.n; ++n)
    for (std::int64_t oc = 0; oc < s.o; ++oc)
      std::fill_n(y + (n * s.o + oc) * out_plane, out_plane, bias ? bias[oc] : T(0));
  std::vector<std::int64_t> offsets(taps.size());
  Ints start(w.rank());
  std::int64_t at = 0;
  for_each_index(Shape(w.in.begin(), w.in.end()), [&](const Ints& i) {
    for (std::size_t d = 0; d < w.rank(); ++d) start[d] = i[d] * w.strides[d] - w.begin[d];
    for (std::size_t t = 0; t < taps.size(); ++t)
      offsets[t] = tap_offset(out_view, start, taps[t], strides);
    for (std::int64_t n = 0; n < s.n; ++n)
      for (std::int64_t ic = 0; ic < s.c; ++ic) {
        const T v = x[(n * s.c + ic) * in_plane + at];
        const std::int64_t g = ic / cg;
        for (std::int64_t oc = 0; oc < og; ++oc) {
          const T* wp = wt + (ic * og + oc) * k_plane;
          T* yp = y + (n * s.o + g * og + oc) * out_plane;
          for (std::size_t t = 0; t < taps.size(); ++t)
            if (offsets[t] >= 0) yp[offsets[t]] += v * wp[t];
        }
      }
    ++at;
  });
}

std::vector<OnnxValue> conv_transpose_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const OnnxValue& wt = ctx.input(1);
  require_rank(ctx, x, 3, "X");
  require_rank(ctx, wt, 3, "W");
  const std::int64_t c = x.shape()[1];
  const std::int64_t groups = ctx.attr_int("group", 1);
  if (groups < 1 || c % groups != 0 || wt.shape()[0] != c)
    ctx.fail(fmt::format("W {} does not fit X {} with group = {}", shape_str(wt.shape()),
                         shape_str(x.shape()), groups));
  const std::int64_t o = wt.shape()[1] * groups;
  const OnnxValue* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Ints kernel = conv_kernel(ctx, x, wt, bias, o);
  const ConvDims s{x.shape()[0], c, o, groups};
  const Window w = transpose_window(ctx, x.shape(), kernel);
  const Shape out = window_output_shape(x.shape(), o, w);
  Tensor y = new_tensor(ctx, out, x.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    conv_transpose_loop<T>(s, w, x.tensor.data<T>(), wt.tensor.data<T>(),
                           bias ? bias->tensor.data<T>() : nullptr, y.data<T>());
  });
  return {make_value(y, x.type)};
}

}  // namespace

void add_conv_ops(OpTable& table) {
  table["Conv"] = {conv_op, 1};
  table["ConvTranspose"] = {conv_transpose_op, 1};
}

}  // namespace lathe::onnx_detail
