// ONNX operators: nn (matrix products, convolution, pooling, normalization, Einsum, Resize).
//
// Float inputs go through lathe's differentiable ops (matmul, linear, conv2d, max_pool2d,
// avg_pool2d, batch_norm, layer_norm, ...) wherever they compute exactly the ONNX semantics, so
// that fine-tuning an imported model reaches its weights; the other cases (integer types, 3-D
// windows, dilated or ceil-mode pooling, ConvTranspose, Resize, ...) run generic loops.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <type_traits>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {
namespace {

using Ints = std::vector<std::int64_t>;

// Bound on window attributes (strides, dilations, pads, sizes) so that their products stay far
// from int64 overflow.
constexpr std::int64_t kMaxWindowValue = std::int64_t{1} << 30;

bool wants_output(const OpContext& ctx, std::size_t i) {
  return i < ctx.output_count() && !ctx.node().outputs[i].empty();
}

bool is_float_storage(const OnnxValue& v) {
  return v.tensor.dtype() != DType::Int64;
}

void require_float(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (!is_float_type(v.type))
    ctx.fail(
        fmt::format("{} must be a floating-point tensor, got {}", what, onnx_type_name(v.type)));
}

void require_same_storage(const OpContext& ctx, const OnnxValue& a, const OnnxValue& b,
                          const char* what) {
  if (a.tensor.dtype() != b.tensor.dtype())
    ctx.fail(fmt::format("{} is {}, but the input is {}", what, onnx_type_name(b.type),
                         onnx_type_name(a.type)));
}

void require_rank(const OpContext& ctx, const OnnxValue& v, std::size_t minimum, const char* what) {
  if (v.shape().size() < minimum)
    ctx.fail(fmt::format("{} must have at least {} axes, got shape {}", what, minimum,
                         shape_str(v.shape())));
}

Shape tail(const Shape& s, std::size_t from) {
  return Shape(s.begin() + from, s.end());
}

// The product of 64-bit integers wrapping around (no signed overflow).
template <class T>
T times(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
  else
    return a * b;
}
template <class T>
T plus(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
  else
    return a + b;
}

// `x` broadcast to `shape` through an addition, which keeps the gradient.
Tensor expand_to(const OpContext& ctx, const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  ctx.check_size(shape, onnx_type_of(x.dtype()));
  return add(x, Tensor::zeros(shape, x.dtype()));
}

// `x` with `value` added before and after along `axis` (a concatenation, which keeps the
// gradient).
Tensor pad_with(const OpContext& ctx, const Tensor& x, std::int64_t axis, std::int64_t before,
                std::int64_t after, double value = 0) {
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
// MatMul and Gemm

template <class T>
void matmul_loop(const T* a, const T* b, T* y, const Shape& batch, const Shape& a_batch,
                 const Shape& b_batch, std::int64_t m, std::int64_t k, std::int64_t n) {
  const auto sa = broadcast_strides(a_batch, batch), sb = broadcast_strides(b_batch, batch);
  for_each_broadcast(batch, {sa, sb}, [&](std::int64_t at, const std::int64_t* off) {
    const T* ap = a + off[0] * m * k;
    const T* bp = b + off[1] * k * n;
    T* yp = y + at * m * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        T acc = 0;
        for (std::int64_t q = 0; q < k; ++q) acc = plus(acc, times(ap[i * k + q], bp[q * n + j]));
        yp[i * n + j] = acc;
      }
  });
}

// A [..., M, K] times B [..., K, N] with lathe's matmul (batch axes broadcast).
Tensor matmul_float(const OpContext& ctx, const Tensor& a, const Tensor& b, const Shape& as,
                    const Shape& bs, const Shape& batch) {
  const std::int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const std::int64_t count = shape_numel(batch);
  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  Tensor a2 = reshape(a, as), b2 = reshape(b, bs);
  if (shape_numel(a_batch) != count) a2 = expand_to(ctx, a2, a_full);
  if (shape_numel(b_batch) == 1)  // one matrix for the whole batch: a single GEMM
    return matmul(reshape(a2, {count * m, k}), reshape(b2, {k, n}));
  if (shape_numel(b_batch) != count) b2 = expand_to(ctx, b2, b_full);
  return matmul(reshape(a2, {count, m, k}), reshape(b2, {count, k, n}));
}

std::vector<OnnxValue> matmul_op(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  if (a.type != b.type)
    ctx.fail(fmt::format("operands are {} and {}", onnx_type_name(a.type), onnx_type_name(b.type)));
  if (a.shape().empty() || b.shape().empty())
    ctx.fail(fmt::format("operands {} and {} must have at least one axis", shape_str(a.shape()),
                         shape_str(b.shape())));
  Shape as = a.shape(), bs = b.shape();
  const bool a_vector = as.size() == 1, b_vector = bs.size() == 1;
  if (a_vector) as.insert(as.begin(), 1);
  if (b_vector) bs.push_back(1);
  const std::int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail(fmt::format("shapes {} and {} do not multiply: inner dimensions {} and {}",
                         shape_str(a.shape()), shape_str(b.shape()), k, bs[bs.size() - 2]));
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(ctx, {a_batch, b_batch});
  Shape out = batch;
  out.insert(out.end(), {m, n});
  ctx.check_size(out, a.type);
  Shape result = batch;
  if (!a_vector) result.push_back(m);
  if (!b_vector) result.push_back(n);

  if (is_float_storage(a) && m > 0 && n > 0 && k > 0 && shape_numel(batch) > 0)
    return {
        make_value(reshape(matmul_float(ctx, a.tensor, b.tensor, as, bs, batch), result), a.type)};
  Tensor y = new_tensor(ctx, out, a.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    matmul_loop<T>(a.tensor.data<T>(), b.tensor.data<T>(), y.data<T>(), batch, a_batch, b_batch, m,
                   k, n);
  });
  return {make_value(reshape(y, result), a.type)};
}

template <class T>
void gemm_loop(const OnnxValue& a, const OnnxValue& b, const OnnxValue* c, bool ta, bool tb,
               double alpha, double beta, std::int64_t m, std::int64_t k, std::int64_t n, T* y) {
  const T* ap = a.tensor.data<T>();
  const T* bp = b.tensor.data<T>();
  const std::int64_t lda = a.shape()[1], ldb = b.shape()[1];
  std::vector<std::int64_t> cs;
  if (c) cs = broadcast_strides(c->shape(), {m, n});
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T acc = 0;
      for (std::int64_t q = 0; q < k; ++q)
        acc = plus(acc,
                   times(ap[ta ? q * lda + i : i * lda + q], bp[tb ? j * ldb + q : q * ldb + j]));
      if (alpha != 1) acc = static_cast<T>(alpha * static_cast<double>(acc));
      if (c) {
        T cv = c->tensor.data<T>()[i * cs[0] + j * cs[1]];
        if (beta != 1) cv = static_cast<T>(beta * static_cast<double>(cv));
        acc = plus(acc, cv);
      }
      y[i * n + j] = acc;
    }
}

std::vector<OnnxValue> gemm_op(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  const OnnxValue* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (a.shape().size() != 2 || b.shape().size() != 2)
    ctx.fail(
        fmt::format("A {} and B {} must be matrices", shape_str(a.shape()), shape_str(b.shape())));
  if (a.type != b.type || (c && c->type != a.type))
    ctx.fail("A, B and C must have the same element type");
  const bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  const double alpha = ctx.attr_float("alpha", 1.0), beta = ctx.attr_float("beta", 1.0);
  const std::int64_t m = a.shape()[ta ? 1 : 0], k = a.shape()[ta ? 0 : 1];
  const std::int64_t kb = b.shape()[tb ? 1 : 0], n = b.shape()[tb ? 0 : 1];
  if (k != kb)
    ctx.fail(fmt::format("A {} and B {} do not multiply (transA={}, transB={})",
                         shape_str(a.shape()), shape_str(b.shape()), ta, tb));
  if (c && broadcast_shapes(ctx, {c->shape(), {m, n}}) != Shape{m, n})
    ctx.fail(fmt::format("C {} does not broadcast to [{},{}]", shape_str(c->shape()), m, n));
  ctx.check_size({m, n}, a.type);

  if (is_float_storage(a) && m > 0 && n > 0 && k > 0) {
    const DType dt = a.tensor.dtype();
    if (!ta && alpha == 1 && (!c || (beta == 1 && c->shape() == Shape{n})))
      return {make_value(linear(a.tensor, b.tensor, c ? c->tensor : Tensor(),
                                tb ? WeightLayout::OutIn : WeightLayout::InOut),
                         a.type)};
    Tensor y = matmul(a.tensor, b.tensor, ta, tb);
    if (alpha != 1) y = mul(y, Tensor::scalar(alpha, dt));
    if (c) y = add(y, beta == 1 ? c->tensor : mul(c->tensor, Tensor::scalar(beta, dt)));
    return {make_value(y, a.type)};
  }
  Tensor y = new_tensor(ctx, {m, n}, a.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    gemm_loop<T>(a, b, c, ta, tb, alpha, beta, m, k, n, y.data<T>());
  });
  return {make_value(y, a.type)};
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
Ints window_attr(const OpContext& ctx, const char* name, std::size_t rank, std::int64_t fallback,
                 std::int64_t minimum) {
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
void read_pads(const OpContext& ctx, Window& w) {
  const Ints pads = window_attr(ctx, "pads", 2 * w.rank(), 0, 0);
  w.begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(w.rank()));
  w.end.assign(pads.begin() + static_cast<std::ptrdiff_t>(w.rank()), pads.end());
}

// Strides, dilations, pads and output size of a convolution or pooling window over the spatial
// axes of `x` ([N, C, spatial...]).
Window make_window(const OpContext& ctx, const Shape& x, const Ints& kernel, bool ceil_mode) {
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

Shape window_output_shape(const Shape& x, std::int64_t channels, const Window& w) {
  Shape out{x[0], channels};
  out.insert(out.end(), w.out.begin(), w.out.end());
  return out;
}

// Offsets (per axis, dilation applied) of every kernel tap, in row-major tap order.
std::vector<Ints> kernel_taps(const Window& w) {
  std::vector<Ints> taps;
  for_each_index(Shape(w.kernel.begin(), w.kernel.end()), [&](const Ints& index) {
    Ints t(w.rank());
    for (std::size_t d = 0; d < w.rank(); ++d) t[d] = index[d] * w.dilations[d];
    taps.push_back(t);
  });
  return taps;
}

// The flat offset of input position start + tap inside a plane, or -1 outside it.
std::int64_t tap_offset(const Window& w, const Ints& start, const Ints& tap, const Ints& strides) {
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

// Pooling.
enum class PoolKind { Max, Average };

struct PoolArgs {
  PoolKind kind;
  bool count_include_pad = false;
  bool column_major = false;  // MaxPool's storage_order for Indices
};

template <class T>
void pool_loop(const PoolArgs& args, const Window& w, std::int64_t planes, const T* x, T* y,
               std::int64_t* indices) {
  const std::int64_t in_plane = shape_numel(w.in), out_plane = shape_numel(w.out);
  const auto taps = kernel_taps(w);
  const auto strides = contiguous_strides(w.in);
  std::vector<std::int64_t> offsets(taps.size()), column(taps.size());
  Ints colstrides(w.rank(), 1);  // column-major strides, for storage_order = 1
  for (std::size_t d = 1; d < w.rank(); ++d) colstrides[d] = colstrides[d - 1] * w.in[d - 1];
  for_each_window(w, [&](std::int64_t at, const Ints& start) {
    std::int64_t inside_padded = 0;
    for (std::size_t t = 0; t < taps.size(); ++t) {
      offsets[t] = tap_offset(w, start, taps[t], strides);
      if (indices && offsets[t] >= 0) column[t] = tap_offset(w, start, taps[t], colstrides);
      bool counted = true;
      for (std::size_t d = 0; d < w.rank(); ++d) {
        const std::int64_t p = start[d] + taps[t][d];
        counted = counted && p >= -w.begin[d] && p < w.in[d] + w.end[d];
      }
      inside_padded += counted;
    }
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const T* xp = x + plane * in_plane;
      if (args.kind == PoolKind::Max) {
        T best = std::numeric_limits<T>::lowest();
        std::int64_t where = -1;
        for (std::size_t t = 0; t < taps.size(); ++t)
          if (offsets[t] >= 0 && (where < 0 || xp[offsets[t]] > best))
            best = xp[offsets[t]], where = static_cast<std::int64_t>(t);
        y[plane * out_plane + at] = best;
        if (indices)
          indices[plane * out_plane + at] =
              plane * in_plane +
              (where < 0 ? 0
                         : (args.column_major ? column : offsets)[static_cast<std::size_t>(where)]);
      } else {
        double sum = 0;
        std::int64_t count = 0;
        for (std::size_t t = 0; t < taps.size(); ++t)
          if (offsets[t] >= 0) sum += static_cast<double>(xp[offsets[t]]), ++count;
        if (args.count_include_pad) count = inside_padded;
        y[plane * out_plane + at] =
            static_cast<T>(count > 0 ? sum / static_cast<double>(count) : 0);
      }
    }
  });
}

// MaxPool / AveragePool through lathe's 2-D pooling (1-D as an image of height 1): all float
// cases but dilated windows, 3-D windows and MaxPool's Indices output.
bool pool_fits_lathe(const Window& w, const OnnxValue& x, bool indices) {
  return is_float_storage(x) && !indices && w.rank() <= 2 && w.all(w.dilations, 1) &&
         shape_numel(w.out) > 0 && x.shape()[0] * x.shape()[1] > 0;
}

Tensor pool_lathe(const OpContext& ctx, const PoolArgs& args, const Window& w, const Tensor& x) {
  const std::size_t lead = 2 - w.rank();
  // Per image axis: input size, ONNX's pads, and the end padding the windows actually reach
  // (more than pads[end] in ceil mode).
  std::array<std::int64_t, 2> in{1, 1}, begin{0, 0}, end{0, 0}, reach{0, 0};
  Pool2dOptions options;
  options.kernel = {1, 1}, options.stride = {1, 1}, options.padding = {0, 0};
  bool lathe_pads = true;  // symmetric pads of at most half the kernel: lathe pads itself
  for (std::size_t d = 0; d < w.rank(); ++d) {
    const std::size_t a = lead + d;
    in[a] = w.in[d], begin[a] = w.begin[d], end[a] = w.end[d];
    options.kernel[a] = w.kernel[d], options.stride[a] = w.strides[d];
    reach[a] = std::max<std::int64_t>(
        0, (w.out[d] - 1) * w.strides[d] + w.kernel[d] - w.in[d] - w.begin[d]);
    lathe_pads = lathe_pads && begin[a] == reach[a] && 2 * begin[a] <= w.kernel[d];
    // count_include_pad = 1 with windows past pads[end] (ceil mode): the mask below must see
    // the padding.
    if (args.count_include_pad && reach[a] > end[a]) lathe_pads = false;
  }
  Tensor x4 = reshape(x, {x.size(0), x.size(1), in[0], in[1]});
  const double fill = args.kind == PoolKind::Max ? -std::numeric_limits<double>::infinity() : 0.0;
  if (lathe_pads)
    options.padding = begin;
  else
    for (std::size_t a = 0; a < 2; ++a)
      x4 = pad_with(ctx, x4, static_cast<std::int64_t>(a) + 2, begin[a], reach[a], fill);
  Shape out{x.size(0), x.size(1)};
  out.insert(out.end(), w.out.begin(), w.out.end());
  if (args.kind == PoolKind::Max) return reshape(max_pool2d(x4, options), out);
  Tensor y = avg_pool2d(x4, options);
  // avg_pool2d divides by the kernel's area; ONNX by the count of window positions inside the
  // input (count_include_pad = 0) or inside the padded input (= 1). Where those differ, divide
  // again by the mean of a mask of the counted positions.
  bool exact = true;
  for (std::size_t a = 0; a < 2; ++a)
    exact = exact && (args.count_include_pad ? reach[a] <= end[a] : begin[a] == 0 && reach[a] == 0);
  if (!exact) {
    const std::int64_t shift0 = lathe_pads ? 0 : begin[0], shift1 = lathe_pads ? 0 : begin[1];
    const std::int64_t h = x4.size(2), wd = x4.size(3);
    std::vector<double> m(static_cast<std::size_t>(h * wd));
    const auto counted = [&](std::int64_t q, std::size_t a) {
      return args.count_include_pad ? q >= -begin[a] && q < in[a] + end[a] : q >= 0 && q < in[a];
    };
    for (std::int64_t i = 0; i < h; ++i)
      for (std::int64_t j = 0; j < wd; ++j)
        m[static_cast<std::size_t>(i * wd + j)] = counted(i - shift0, 0) && counted(j - shift1, 1);
    y = div(y, avg_pool2d(Tensor::from_vector(m, {1, 1, h, wd}, x.dtype()), options));
  }
  return reshape(y, out);
}

std::vector<OnnxValue> pool_op(const OpContext& ctx, PoolKind kind) {
  const OnnxValue& x = ctx.input(0);
  require_rank(ctx, x, 3, "X");
  const std::size_t rank = x.shape().size() - 2;
  const Ints kernel = ctx.attr_ints("kernel_shape", {});
  if (kernel.size() != rank)
    ctx.fail(fmt::format("kernel_shape has {} values, expected {} for X {}", kernel.size(), rank,
                         shape_str(x.shape())));
  PoolArgs args{kind};
  args.count_include_pad = ctx.attr_int("count_include_pad", 0) != 0;
  args.column_major = ctx.attr_int("storage_order", 0) != 0;
  const Window w = make_window(ctx, x.shape(), kernel, ctx.attr_int("ceil_mode", 0) != 0);
  for (std::size_t d = 0; d < rank; ++d)
    if (w.begin[d] >= w.extent(d) || w.end[d] >= w.extent(d))
      ctx.fail(fmt::format("pads ({}, {}) on axis {} must be smaller than the window ({})",
                           w.begin[d], w.end[d], d + 2, w.extent(d)));
  const Shape out = window_output_shape(x.shape(), x.shape()[1], w);
  ctx.check_size(out, x.type);
  const bool indices = kind == PoolKind::Max && wants_output(ctx, 1);
  if (pool_fits_lathe(w, x, indices))
    return {make_value(pool_lathe(ctx, args, w, x.tensor), x.type)};
  if (kind == PoolKind::Average) require_float(ctx, x, "X");
  Tensor y = new_tensor(ctx, out, x.type);
  Tensor where = indices ? new_tensor(ctx, out, OnnxType::Int64) : Tensor();
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    pool_loop<T>(args, w, x.shape()[0] * x.shape()[1], x.tensor.data<T>(), y.data<T>(),
                 indices ? where.data<std::int64_t>() : nullptr);
  });
  std::vector<OnnxValue> result{make_value(y, x.type)};
  if (indices) result.push_back(make_value(where, OnnxType::Int64));
  return result;
}

std::vector<OnnxValue> global_pool_op(const OpContext& ctx, PoolKind kind) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  const Shape& s = x.shape();
  if (s.size() == 2) return {x};
  const std::int64_t area = shape_numel(tail(s, 2));
  if (area == 0) ctx.fail(fmt::format("X {} has no spatial values to pool", shape_str(s)));
  Shape out{s[0], s[1]};
  out.resize(s.size(), 1);
  Tensor flat = reshape(x.tensor, {s[0], s[1], area});
  Tensor y = kind == PoolKind::Max ? max(flat, 2, true) : mean(flat, {2}, true);
  return {make_value(reshape(y, out), x.type)};
}

// ---------------------------------------------------------------------------------------------
// Normalization

// A per-channel parameter [C] of a normalization node.
void require_channels(const OpContext& ctx, const OnnxValue& x, const OnnxValue& v,
                      const char* what) {
  require_same_storage(ctx, x, v, what);
  if (v.shape() != Shape{x.shape()[1]})
    ctx.fail(fmt::format("{} {} must be [{}] for X {}", what, shape_str(v.shape()), x.shape()[1],
                         shape_str(x.shape())));
}

// `v` [C] shaped to broadcast along axis 1 of a rank-`rank` tensor.
Tensor channel_view(const Tensor& v, std::size_t rank) {
  Shape s(rank, 1);
  s[1] = v.numel();
  return reshape(v, s);
}

std::vector<OnnxValue> batch_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  if (ctx.attr_int("training_mode", 0) != 0)
    ctx.unsupported("training_mode = 1 (batch statistics) is not supported");
  if (ctx.opset() < 9 && ctx.attr_int("spatial", 1) == 0)
    ctx.unsupported("spatial = 0 is not supported");
  if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) == 0 && ctx.output_count() > 1)
    ctx.unsupported("training (is_test = 0) is not supported");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue& bias = ctx.input(2);
  const OnnxValue& mean_v = ctx.input(3);
  const OnnxValue& var_v = ctx.input(4);
  for (const auto& [v, what] :
       {std::pair{&scale, "scale"}, {&bias, "B"}, {&mean_v, "mean"}, {&var_v, "var"}})
    require_channels(ctx, x, *v, what);
  const double eps = ctx.attr_float("epsilon", 1e-5);
  if (eps > 0 && std::isfinite(eps))
    return {make_value(batch_norm(x.tensor, mean_v.tensor, var_v.tensor, scale.tensor, bias.tensor,
                                  false, 0.1, eps),
                       x.type)};
  const std::size_t rank = x.shape().size();
  const DType dt = x.tensor.dtype();
  Tensor inv = pow(add(channel_view(var_v.tensor, rank), Tensor::scalar(eps, dt)), -0.5);
  Tensor y = mul(sub(x.tensor, channel_view(mean_v.tensor, rank)), inv);
  y = add(mul(y, channel_view(scale.tensor, rank)), channel_view(bias.tensor, rank));
  return {make_value(y, x.type)};
}

// Mean and 1 / sqrt(variance + eps) over the axes from `axis` on, kept as size-1 axes.
std::pair<Tensor, Tensor> moments(const Tensor& x, std::size_t axis, double eps) {
  Ints axes;
  for (std::size_t d = axis; d < x.shape().size(); ++d)
    axes.push_back(static_cast<std::int64_t>(d));
  Tensor mu = mean(x, axes, true);
  Tensor centered = sub(x, mu);
  Tensor var = mean(mul(centered, centered), axes, true);
  return {mu, pow(add(var, Tensor::scalar(eps, x.dtype())), -0.5)};
}

std::vector<OnnxValue> layer_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Shape& s = x.shape();
  const auto rank = static_cast<std::int64_t>(s.size());
  if (rank == 0) ctx.fail("X must have at least one axis");
  const auto axis = static_cast<std::size_t>(resolve_axis(ctx, ctx.attr_int("axis", -1), rank));
  const double eps = ctx.attr_float("epsilon", 1e-5);
  const Shape normalized = tail(s, axis);
  for (const OnnxValue* v : {&scale, bias}) {
    if (!v) continue;
    require_same_storage(ctx, x, *v, "Scale and B");
    if (broadcast_shapes(ctx, {s, v->shape()}) != s)
      ctx.fail(fmt::format("Scale/B {} does not broadcast to X {}", shape_str(v->shape()),
                           shape_str(s)));
  }
  const std::int64_t inner = shape_numel(normalized),
                     outer = shape_numel(s) / std::max<std::int64_t>(inner, 1);
  const bool stats = wants_output(ctx, 1) || wants_output(ctx, 2);
  const bool exact_params = scale.shape() == normalized && (!bias || bias->shape() == normalized);
  if (!stats && exact_params && eps > 0 && std::isfinite(eps) && inner > 0) {
    Tensor y = layer_norm(reshape(x.tensor, {outer, inner}), reshape(scale.tensor, {inner}),
                          bias ? reshape(bias->tensor, {inner}) : Tensor(), eps);
    return {make_value(reshape(y, s), x.type)};
  }
  auto [mu, inv] = moments(x.tensor, axis, eps);
  Tensor y = mul(mul(sub(x.tensor, mu), inv), scale.tensor);
  if (bias) y = add(y, bias->tensor);
  return {make_value(y, x.type), make_value(mu, x.type), make_value(inv, x.type)};
}

std::vector<OnnxValue> instance_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 3, "X");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue& bias = ctx.input(2);
  require_channels(ctx, x, scale, "scale");
  require_channels(ctx, x, bias, "B");
  const Shape& s = x.shape();
  const std::size_t rank = s.size();
  const double eps = ctx.attr_float("epsilon", 1e-5);
  const std::int64_t area = shape_numel(tail(s, 2));
  Tensor y;
  if (eps > 0 && std::isfinite(eps) && area > 0) {
    y = reshape(layer_norm(reshape(x.tensor, {s[0] * s[1], area}), Tensor(), Tensor(), eps), s);
  } else {
    auto [mu, inv] = moments(x.tensor, 2, eps);
    y = mul(sub(x.tensor, mu), inv);
  }
  y = add(mul(y, channel_view(scale.tensor, rank)), channel_view(bias.tensor, rank));
  return {make_value(y, x.type)};
}

std::vector<OnnxValue> lrn_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  const std::int64_t size = ctx.attr_int("size", 0);
  const std::int64_t c = x.shape()[1];
  if (size < 1 || size > kMaxWindowValue)
    ctx.fail(fmt::format("size must be a positive number, got {}", size));
  const double alpha = ctx.attr_float("alpha", 1e-4), beta = ctx.attr_float("beta", 0.75);
  const double bias = ctx.attr_float("bias", 1.0);
  const std::int64_t before = (size - 1) / 2, after = size - 1 - before;
  const DType dt = x.tensor.dtype();
  // The sum of squares over channels [c - before, c + after], by shifted slices of a padded copy.
  Tensor padded =
      pad_with(ctx, mul(x.tensor, x.tensor), 1, std::min(before, c), std::min(after, c));
  const std::int64_t lead = std::min(before, c);
  Tensor sum_sq;
  for (std::int64_t shift = -before; shift <= after; ++shift) {
    if (shift <= -c || shift >= c) continue;  // entirely in the padding
    Tensor part = slice(padded, 1, lead + shift, lead + shift + c);
    sum_sq = sum_sq.defined() ? add(sum_sq, part) : part;
  }
  Tensor denom = add(mul(sum_sq, Tensor::scalar(alpha / static_cast<double>(size), dt)),
                     Tensor::scalar(bias, dt));
  return {make_value(div(x.tensor, pow(denom, beta)), x.type)};
}

// ---------------------------------------------------------------------------------------------
// Einsum

struct EinsumSpec {
  std::vector<std::vector<int>> inputs;  // label ids per operand axis
  std::vector<int> output;
  std::vector<std::int64_t> sizes;  // per label id
};

// Label ids: 0-51 for letters, 52 + k for the k-th ellipsis axis (aligned to the right).
int letter_id(char ch) {
  return ch >= 'a' ? ch - 'a' : 26 + (ch - 'A');
}

std::vector<int> parse_term(const OpContext& ctx, const std::string& term, std::int64_t rank,
                            int ellipsis_rank, bool is_output) {
  std::vector<int> labels;
  std::size_t dots = term.find("...");
  const auto letters = static_cast<std::int64_t>(term.size() - (dots == std::string::npos ? 0 : 3));
  for (std::size_t i = 0; i < term.size(); ++i) {
    if (i == dots) {
      const std::int64_t e = is_output ? ellipsis_rank : rank - letters;
      if (e < 0 || e > ellipsis_rank)
        ctx.fail(fmt::format("term '{}' does not fit an operand of rank {}", term, rank));
      for (std::int64_t k = ellipsis_rank - e; k < ellipsis_rank; ++k)
        labels.push_back(52 + static_cast<int>(k));
      i += 2;
      continue;
    }
    const char ch = term[i];
    if (!std::isalpha(static_cast<unsigned char>(ch)))
      ctx.fail(fmt::format("equation term '{}' has an invalid character '{}'", term, ch));
    labels.push_back(letter_id(ch));
  }
  if (!is_output && static_cast<std::int64_t>(labels.size()) != rank)
    ctx.fail(fmt::format("term '{}' has {} labels for an operand of rank {}", term, labels.size(),
                         rank));
  return labels;
}

std::vector<std::string> split_terms(const std::string& s) {
  std::vector<std::string> terms(1);
  for (const char ch : s) {
    if (ch == ',')
      terms.emplace_back();
    else
      terms.back() += ch;
  }
  return terms;
}

EinsumSpec parse_einsum(const OpContext& ctx) {
  std::string eq;
  for (const char ch : ctx.attr_string("equation", ""))
    if (!std::isspace(static_cast<unsigned char>(ch))) eq += ch;
  const std::size_t arrow = eq.find("->");
  const auto terms = split_terms(eq.substr(0, arrow));
  if (terms.size() != ctx.input_count())
    ctx.fail(fmt::format("equation '{}' has {} operands, the node {}", eq, terms.size(),
                         ctx.input_count()));
  int ellipsis_rank = 0;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const std::size_t dots = terms[i].find("...");
    if (dots == std::string::npos) continue;
    if (terms[i].find("...", dots + 3) != std::string::npos)
      ctx.fail(fmt::format("term '{}' has two ellipses", terms[i]));
    const auto rank = static_cast<std::int64_t>(ctx.input(i).shape().size());
    ellipsis_rank =
        std::max(ellipsis_rank, static_cast<int>(std::max<std::int64_t>(
                                    0, rank - static_cast<std::int64_t>(terms[i].size() - 3))));
  }
  EinsumSpec spec;
  spec.sizes.assign(52 + static_cast<std::size_t>(ellipsis_rank), -1);
  std::vector<int> counts(spec.sizes.size(), 0);
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const Shape& shape = ctx.input(i).shape();
    spec.inputs.push_back(
        parse_term(ctx, terms[i], static_cast<std::int64_t>(shape.size()), ellipsis_rank, false));
    for (std::size_t a = 0; a < shape.size(); ++a) {
      const int id = spec.inputs.back()[a];
      auto& size = spec.sizes[static_cast<std::size_t>(id)];
      ++counts[static_cast<std::size_t>(id)];
      if (size == -1 || (size == 1 && id >= 52)) {
        size = shape[a];
      } else if (size != shape[a] && !(id >= 52 && shape[a] == 1)) {
        ctx.fail(fmt::format("equation '{}': a label has sizes {} and {}", eq, size, shape[a]));
      }
    }
  }
  if (arrow != std::string::npos) {
    const std::string out = eq.substr(arrow + 2);
    if (out.find("...") == std::string::npos && ellipsis_rank > 0 &&
        std::any_of(spec.sizes.begin() + 52, spec.sizes.end(), [](auto s) { return s > 1; }))
      ctx.fail("the output term drops the ellipsis axes");
    spec.output = parse_term(ctx, out, 0, ellipsis_rank, true);
    for (const int id : spec.output)
      if (spec.sizes[static_cast<std::size_t>(id)] < 0)
        ctx.fail(fmt::format("output term '{}' has a label no operand has", out));
  } else {
    // Implicit output: the ellipsis axes, then the labels used once, in alphabetical order.
    for (int k = 0; k < ellipsis_rank; ++k) spec.output.push_back(52 + k);
    for (int ch = 0; ch < 26; ++ch)
      for (const int id : {ch + 26, ch})  // 'A' < 'a' in ASCII order
        if (counts[static_cast<std::size_t>(id)] == 1) spec.output.push_back(id);
  }
  for (std::size_t a = 0; a < spec.output.size(); ++a)
    if (std::count(spec.output.begin(), spec.output.end(), spec.output[a]) > 1)
      ctx.fail("the output term repeats a label");
  for (auto& size : spec.sizes) size = std::max<std::int64_t>(size, 0);
  return spec;
}

std::vector<OnnxValue> einsum_op(const OpContext& ctx) {
  if (ctx.input_count() == 0) ctx.fail("Einsum needs at least one operand");
  const OnnxValue& first = ctx.input(0);
  for (std::size_t i = 1; i < ctx.input_count(); ++i)
    if (ctx.input(i).type != first.type) ctx.fail("operands have different element types");
  const EinsumSpec spec = parse_einsum(ctx);
  // Iterate over every label: the output's first, then the summed ones.
  std::vector<int> order = spec.output;
  for (const auto& labels : spec.inputs)
    for (const int id : labels)
      if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  Shape all, out;
  for (const int id : order) all.push_back(spec.sizes[static_cast<std::size_t>(id)]);
  for (const int id : spec.output) out.push_back(spec.sizes[static_cast<std::size_t>(id)]);
  std::vector<std::vector<std::int64_t>> strides;
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const Shape& shape = ctx.input(i).shape();
    const auto own = contiguous_strides(shape);
    std::vector<std::int64_t> s(order.size(), 0);
    for (std::size_t a = 0; a < shape.size(); ++a) {
      if (shape[a] == 1) continue;  // broadcast (or size 1 anyway)
      const auto at = std::find(order.begin(), order.end(), spec.inputs[i][a]) - order.begin();
      s[static_cast<std::size_t>(at)] += own[a];  // a repeated label walks the diagonal
    }
    strides.push_back(s);
  }
  auto out_strides = contiguous_strides(out);
  out_strides.resize(order.size(), 0);
  strides.push_back(out_strides);
  Tensor y = new_tensor(ctx, out, first.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    std::fill_n(yp, y.numel(), T(0));
    std::vector<const T*> xs;
    for (std::size_t i = 0; i < spec.inputs.size(); ++i)
      xs.push_back(ctx.input(i).tensor.data<T>());
    const std::size_t n = xs.size();
    for_each_broadcast(all, strides, [&](std::int64_t, const std::int64_t* off) {
      T product = 1;
      for (std::size_t i = 0; i < n; ++i) product = times(product, xs[i][off[i]]);
      yp[off[n]] = plus(yp[off[n]], product);
    });
  });
  return {make_value(y, first.type)};
}

// ---------------------------------------------------------------------------------------------
// Resize and Upsample

struct Tap {
  std::int64_t index;
  double weight;
};

struct ResizeArgs {
  std::string mode = "nearest";
  std::string transform = "half_pixel";
  std::string nearest = "round_prefer_floor";  // or "simple" (Upsample, Resize-10)
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0;
};

double source_coordinate(const ResizeArgs& r, double x, std::int64_t in, std::int64_t out,
                         double scale, double roi_start, double roi_end) {
  const auto fin = static_cast<double>(in), fout = static_cast<double>(out);
  // align_corners divides by in * scale - 1, as the ONNX reference does: the output length
  // itself unless scales (not sizes) gave a fractional one.
  const double scaled = fin * scale;
  const std::string& t = r.transform;
  if (t == "half_pixel") return (x + 0.5) / scale - 0.5;
  if (t == "pytorch_half_pixel") return out > 1 ? (x + 0.5) / scale - 0.5 : 0;
  if (t == "asymmetric") return x / scale;
  if (t == "tf_half_pixel_for_nearest" || t == "tf_half_pixel_for_nn") return (x + 0.5) / scale;
  if (t == "align_corners") return out > 1 ? x * (fin - 1) / (scaled - 1) : 0;
  // tf_crop_and_resize
  if (out > 1) return roi_start * (fin - 1) + x * (roi_end - roi_start) * (fin - 1) / (fout - 1);
  return 0.5 * (roi_start + roi_end) * (fin - 1);
}

std::int64_t nearest_index(const ResizeArgs& r, double x, double scale) {
  const double f = std::floor(x);
  const double frac = x - f;
  const std::string& m = r.nearest;
  if (m == "simple") return static_cast<std::int64_t>(scale < 1 ? std::ceil(x) : f);
  if (m == "floor") return static_cast<std::int64_t>(f);
  if (m == "ceil") return static_cast<std::int64_t>(std::ceil(x));
  if (frac == 0.5) return static_cast<std::int64_t>(m == "round_prefer_ceil" ? f + 1 : f);
  return static_cast<std::int64_t>(frac < 0.5 ? f : f + 1);
}

// Taps of one output position along one axis; empty for the extrapolation value.
std::vector<Tap> resize_taps(const ResizeArgs& r, double x, std::int64_t in, double scale) {
  const auto clamp = [&](std::int64_t i) { return std::clamp<std::int64_t>(i, 0, in - 1); };
  if (r.mode == "nearest") return {{clamp(nearest_index(r, x, scale)), 1.0}};
  const double f = std::floor(x);
  const double t = x - f;
  const auto base = static_cast<std::int64_t>(f);
  std::vector<Tap> taps;
  if (r.mode == "linear") {
    taps = {{base, 1 - t}, {base + 1, t}};
  } else {
    const double a = r.cubic_a;
    const auto far = [&](double d) { return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a; };
    const auto near = [&](double d) { return ((a + 2) * d - (a + 3)) * d * d + 1; };
    taps = {
        {base - 1, far(t + 1)}, {base, near(t)}, {base + 1, near(1 - t)}, {base + 2, far(2 - t)}};
  }
  if (r.exclude_outside) {
    double total = 0;
    for (auto& tap : taps) {
      if (tap.index < 0 || tap.index >= in) tap.weight = 0;
      total += tap.weight;
    }
    if (total != 0)
      for (auto& tap : taps) tap.weight /= total;
  }
  for (auto& tap : taps) tap.index = clamp(tap.index);
  return taps;
}

// One axis resized: data [outer, in, inner] -> [outer, out, inner].
std::vector<double> resize_axis(const std::vector<double>& data, std::int64_t outer,
                                std::int64_t in, std::int64_t inner,
                                const std::vector<std::vector<Tap>>& taps, double extrapolation) {
  const auto out = static_cast<std::int64_t>(taps.size());
  std::vector<double> result(static_cast<std::size_t>(outer * out * inner));
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t i = 0; i < out; ++i) {
      double* dst = result.data() + (o * out + i) * inner;
      const auto& ts = taps[static_cast<std::size_t>(i)];
      if (ts.empty()) {
        std::fill_n(dst, inner, extrapolation);
        continue;
      }
      std::fill_n(dst, inner, 0.0);
      for (const Tap& tap : ts) {
        if (tap.weight == 0) continue;
        const double* src = data.data() + (o * in + tap.index) * inner;
        for (std::int64_t k = 0; k < inner; ++k) dst[k] += tap.weight * src[k];
      }
    }
  return result;
}

OnnxValue resize(const OpContext& ctx, const OnnxValue& x, const ResizeArgs& r,
                 const std::vector<double>& scales_in, const Ints& sizes,
                 const std::vector<double>& roi) {
  const Shape& s = x.shape();
  const std::size_t rank = s.size();
  Shape out(rank);
  std::vector<double> scales(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    if (!sizes.empty()) {
      if (sizes[d] < 0) ctx.fail(fmt::format("sizes value {} is negative", sizes[d]));
      out[d] = sizes[d];
      scales[d] = s[d] > 0 ? static_cast<double>(sizes[d]) / static_cast<double>(s[d]) : 1.0;
    } else {
      scales[d] = scales_in[d];
      if (!(scales[d] > 0) || !std::isfinite(scales[d]))
        ctx.fail(fmt::format("scales value {} is not positive", scales[d]));
      double length = static_cast<double>(s[d]) * scales[d];
      if (r.transform == "tf_crop_and_resize") length *= roi[rank + d] - roi[d];
      if (!(length >= 0) || length > 1e15)
        ctx.fail(fmt::format("scales value {} gives an output length out of range", scales[d]));
      out[d] = static_cast<std::int64_t>(std::floor(length));
    }
  }
  ctx.check_size(out, x.type);
  for (std::size_t d = 0; d < rank; ++d)
    if (s[d] == 0 && out[d] > 0) ctx.fail(fmt::format("cannot resize an empty axis {}", d));
  std::vector<double> data(static_cast<std::size_t>(x.tensor.numel()));
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    for (std::size_t k = 0; k < data.size(); ++k) data[k] = static_cast<double>(p[k]);
  });
  // Innermost axis first: what the reference's nested 1-D interpolation computes.
  Shape current = s;
  for (std::size_t d = rank; d-- > 0;) {
    const bool crop = r.transform == "tf_crop_and_resize";
    const double start = crop ? roi[d] : 0, end = crop ? roi[rank + d] : 1;
    if (out[d] == s[d] && scales[d] == 1 && !crop) continue;
    std::vector<std::vector<Tap>> taps(static_cast<std::size_t>(out[d]));
    for (std::int64_t i = 0; i < out[d]; ++i) {
      const double xo =
          source_coordinate(r, static_cast<double>(i), s[d], out[d], scales[d], start, end);
      if (crop && (xo < 0 || xo > static_cast<double>(s[d] - 1))) continue;
      taps[static_cast<std::size_t>(i)] = resize_taps(r, xo, s[d], scales[d]);
    }
    Shape next = current;
    next[d] = out[d];
    ctx.check_size(next, OnnxType::Double);
    const std::int64_t outer =
        shape_numel(Shape(current.begin(), current.begin() + static_cast<std::ptrdiff_t>(d)));
    data = resize_axis(data, outer, s[d], shape_numel(tail(current, d + 1)), taps, r.extrapolation);
    current = next;
  }
  Tensor y = new_tensor(ctx, out, x.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    T* p = y.data<T>();
    for (std::size_t k = 0; k < data.size(); ++k) {
      if constexpr (std::is_integral_v<T>)
        p[k] = std::isnan(data[k])
                   ? 0
                   : static_cast<T>(std::clamp(std::round(data[k]), -9.2e18, 9.2e18));
      else
        p[k] = static_cast<T>(data[k]);
    }
  });
  return make_value(y, x.type);
}

std::vector<double> float_values(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (v.shape().size() > 1)
    ctx.fail(fmt::format("{} must be 1-D, got shape {}", what, shape_str(v.shape())));
  std::vector<double> out(static_cast<std::size_t>(v.tensor.numel()));
  visit_storage(v.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = v.tensor.data<T>();
    for (std::size_t k = 0; k < out.size(); ++k) out[k] = static_cast<double>(p[k]);
  });
  return out;
}

void check_resize_mode(const OpContext& ctx, const ResizeArgs& r, bool cubic_allowed) {
  if (r.mode != "nearest" && r.mode != "linear" && !(cubic_allowed && r.mode == "cubic"))
    ctx.fail(fmt::format("unknown mode '{}'", r.mode));
}

std::vector<OnnxValue> resize_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::size_t rank = x.shape().size();
  ResizeArgs r;
  r.mode = ctx.attr_string("mode", "nearest");
  if (ctx.has_attr("axes")) ctx.unsupported("the axes attribute is not supported");
  if (ctx.attr_int("antialias", 0) != 0) ctx.unsupported("antialias is not supported");
  if (ctx.attr_string("keep_aspect_ratio_policy", "stretch") != "stretch")
    ctx.unsupported("keep_aspect_ratio_policy other than stretch is not supported");
  std::vector<double> scales, roi;
  Ints sizes;
  if (ctx.opset() < 11) {
    check_resize_mode(ctx, r, false);
    r.transform = "asymmetric", r.nearest = "simple";
    scales = float_values(ctx, ctx.input(1), "scales");
  } else {
    check_resize_mode(ctx, r, true);
    r.transform = ctx.attr_string("coordinate_transformation_mode", "half_pixel");
    r.nearest = ctx.attr_string("nearest_mode", "round_prefer_floor");
    r.cubic_a = ctx.attr_float("cubic_coeff_a", -0.75);
    r.exclude_outside = ctx.attr_int("exclude_outside", 0) != 0;
    r.extrapolation = ctx.attr_float("extrapolation_value", 0.0);
    static const char* transforms[] = {"half_pixel",           "pytorch_half_pixel",
                                       "asymmetric",           "tf_half_pixel_for_nearest",
                                       "tf_half_pixel_for_nn", "align_corners",
                                       "tf_crop_and_resize"};
    if (std::none_of(std::begin(transforms), std::end(transforms),
                     [&](const char* t) { return r.transform == t; }))
      ctx.unsupported(fmt::format("coordinate_transformation_mode '{}'", r.transform));
    static const char* modes[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    if (std::none_of(std::begin(modes), std::end(modes),
                     [&](const char* m) { return r.nearest == m; }))
      ctx.fail(fmt::format("unknown nearest_mode '{}'", r.nearest));
    if (ctx.has_input(1)) roi = float_values(ctx, ctx.input(1), "roi");
    if (ctx.has_input(2)) scales = float_values(ctx, ctx.input(2), "scales");
    if (ctx.has_input(3)) sizes = int_values(ctx, ctx.input(3), "sizes");
    if (r.transform == "tf_crop_and_resize" && roi.size() != 2 * rank)
      ctx.fail(fmt::format("roi has {} values, expected {}", roi.size(), 2 * rank));
  }
  if (!sizes.empty() && !scales.empty()) ctx.fail("scales and sizes are both given");
  if (sizes.empty() && scales.size() != rank)
    ctx.fail(fmt::format("scales has {} values for X {}", scales.size(), shape_str(x.shape())));
  if (!sizes.empty() && sizes.size() != rank)
    ctx.fail(fmt::format("sizes has {} values for X {}", sizes.size(), shape_str(x.shape())));
  return {resize(ctx, x, r, scales, sizes, roi)};
}

std::vector<OnnxValue> upsample_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  ResizeArgs r;
  r.mode = ctx.attr_string("mode", "nearest");
  if (r.mode == "bilinear") r.mode = "linear";
  check_resize_mode(ctx, r, false);
  r.transform = "asymmetric", r.nearest = "simple";
  const std::vector<double> scales =
      ctx.opset() < 9 ? ctx.attr_floats("scales") : float_values(ctx, ctx.input(1), "scales");
  if (scales.size() != x.shape().size())
    ctx.fail(fmt::format("scales has {} values for X {}", scales.size(), shape_str(x.shape())));
  return {resize(ctx, x, r, scales, {}, {})};
}

}  // namespace

void add_nn_ops(OpTable& table) {
  table["MatMul"] = {matmul_op, 1};
  table["Gemm"] = {gemm_op, 1};
  table["Conv"] = {conv_op, 1};
  table["ConvTranspose"] = {conv_transpose_op, 1};
  table["MaxPool"] = {[](const OpContext& ctx) { return pool_op(ctx, PoolKind::Max); }, 1};
  table["AveragePool"] = {[](const OpContext& ctx) { return pool_op(ctx, PoolKind::Average); }, 1};
  table["GlobalAveragePool"] = {
      [](const OpContext& ctx) { return global_pool_op(ctx, PoolKind::Average); }, 1};
  table["GlobalMaxPool"] = {[](const OpContext& ctx) { return global_pool_op(ctx, PoolKind::Max); },
                            1};
  table["BatchNormalization"] = {batch_norm_op, 1};
  table["LayerNormalization"] = {layer_norm_op, 17};
  table["InstanceNormalization"] = {instance_norm_op, 1};
  table["LRN"] = {lrn_op, 1};
  table["Einsum"] = {einsum_op, 12};
  table["Resize"] = {resize_op, 10};
  table["Upsample"] = {upsample_op, 7};
}

}  // namespace lathe::onnx_detail
