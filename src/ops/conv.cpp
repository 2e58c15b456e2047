// 2-D convolution on NCHW tensors (pooling is in pool.cpp).
//
// conv2d lowers each image and group to one GEMM: im2col writes the input patches as columns
// [Cg*KH*KW, OH*OW], and the weights [Og, Cg*KH*KW] times the columns land directly in the
// output [Og, OH*OW] block, which starts as the bias. Images are spread over the kernel thread
// pool. Backward recomputes the columns (cheaper in memory than keeping them) and uses two more
// GEMMs per image: the weight gradient against the columns (summed per thread, then across
// threads) and the column gradient, which col2im adds back into the input's shape. float32 3x3
// stride-1 convolutions with 8 or more channels on both sides run Winograd's F(2x2, 3x3)
// instead (conv_winograd.cpp): 2.25x fewer multiply-adds, in products that span several images.
#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <optional>
#include <type_traits>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/ops/conv_one_channel.h"
#include "src/ops/conv_winograd.h"
#include "src/ops/frozen_conv.h"
#include "src/ops/kernels.h"
#include "src/tensor/blas.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

struct ConvGeometry {
  std::int64_t n, c, h, w;      // input
  std::int64_t o, kh, kw;       // weight [O, C / groups, KH, KW]
  std::int64_t oh, ow;          // output
  std::int64_t groups, cg, og;  // groups, input and output channels per group
  Conv2dOptions options;
  std::int64_t patch() const { return cg * kh * kw; }  // rows of the columns matrix
  std::int64_t pixels() const { return oh * ow; }
  std::int64_t columns() const { return n * oh * ow; }
};

ConvGeometry conv_geometry(const Tensor& input, const Tensor& weight, const Tensor& bias,
                           const Conv2dOptions& options) {
  const char* op = "conv2d";
  detail::require_defined(op, input);
  detail::require_defined(op, weight, "weight");
  detail::require_floating(op, input);
  detail::require_same_dtype(op, input, weight);
  if (input.dim() != 4 || weight.dim() != 4)
    throw Error(
        fmt::format("conv2d: input {} and weight {}: expected [N,C,H,W] and [O,C/groups,KH,KW]",
                    shape_str(input.shape()), shape_str(weight.shape())));
  detail::require_positive_pair(op, "stride", options.stride, 1);
  detail::require_positive_pair(op, "dilation", options.dilation, 1);
  detail::require_positive_pair(op, "padding", options.padding, 0);
  ConvGeometry g{};
  g.options = options;
  g.n = input.size(0), g.c = input.size(1), g.h = input.size(2), g.w = input.size(3);
  g.o = weight.size(0), g.kh = weight.size(2), g.kw = weight.size(3);
  g.groups = options.groups;
  if (g.groups < 1 || g.c % g.groups != 0 || g.o % g.groups != 0)
    throw Error(fmt::format("conv2d: groups = {} must divide the {} input and {} output channels",
                            g.groups, g.c, g.o));
  g.cg = g.c / g.groups, g.og = g.o / g.groups;
  if (weight.size(1) != g.cg)
    throw Error(fmt::format(
        "conv2d: weight {} expects {} input channels per group, input {} has {} "
        "(groups = {})",
        shape_str(weight.shape()), weight.size(1), shape_str(input.shape()), g.cg, g.groups));
  if (bias.defined()) {
    detail::require_same_dtype(op, input, bias);
    if (bias.shape() != Shape{g.o})
      throw Error(fmt::format("conv2d: bias {} does not match {} output channels",
                              shape_str(bias.shape()), g.o));
  }
  g.oh = conv_output_size(g.h, g.kh, options.stride[0], options.padding[0], options.dilation[0]);
  g.ow = conv_output_size(g.w, g.kw, options.stride[1], options.padding[1], options.dilation[1]);
  if (g.oh < 1 || g.ow < 1)
    throw Error(
        fmt::format("conv2d: input {} is smaller than the {}x{} kernel (dilation {}, "
                    "padding {})",
                    shape_str(input.shape()), g.kh, g.kw, options.dilation[0], options.padding[0]));
  return g;
}

// Along one axis (0: rows, 1: columns), the outputs [lo, hi) whose kernel tap `tap` reads inside
// the input (the rest read the padding).
std::pair<std::int64_t, std::int64_t> valid_outputs(const ConvGeometry& g, int axis,
                                                    std::int64_t tap) {
  const auto& o = g.options;
  const std::int64_t in = axis == 0 ? g.h : g.w, out = axis == 0 ? g.oh : g.ow;
  const std::int64_t stride = o.stride[axis];
  const std::int64_t offset = tap * o.dilation[axis] - o.padding[axis];  // in = out*stride + offset
  const std::int64_t lo = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const std::int64_t hi = in - offset <= 0 ? 0 : std::min(out, (in - offset + stride - 1) / stride);
  return {std::min(lo, out), std::max(std::min(lo, out), hi)};
}

std::pair<std::int64_t, std::int64_t> valid_columns(const ConvGeometry& g, std::int64_t j) {
  return valid_outputs(g, 1, j);
}

std::pair<std::int64_t, std::int64_t> valid_rows(const ConvGeometry& g, std::int64_t i) {
  return valid_outputs(g, 0, i);
}

// Stride 1 with the output as wide as the input ("same" padding, the CNNs' 3x3 with padding 1):
// one tap's valid output rows read one contiguous run of the input plane, shifted, in which
// only the first and last columns of each row wrapped into the neighbouring input row. So each
// row of the columns is one copy (or, in col2im, one vectorised addition) and a few fixes, not a
// library call per 14-pixel row.
bool same_width_unit_stride(const ConvGeometry& g) {
  return g.options.stride == std::array<std::int64_t, 2>{1, 1} && g.ow == g.w;
}

// Calls f(r, start, out_begin, rows, lo, hi) for each row r of the columns in a same-width,
// unit-stride convolution: `rows` output rows starting at out_begin read the image from index
// `start` on (where output column 0 of the first row reads, possibly outside the plane, so only
// indices start + lo to the run's end minus (ow - hi) may be read), columns [lo, hi) valid.
template <class F>
void for_each_same_width_run(const ConvGeometry& g, std::int64_t group, F f) {
  const auto& o = g.options;
  for (std::int64_t r = 0; r < g.patch(); ++r) {
    const std::int64_t c = group * g.cg + r / (g.kh * g.kw);
    const std::int64_t i = r / g.kw % g.kh, j = r % g.kw;
    const auto [y_lo, y_hi] = valid_rows(g, i);
    const auto [x_lo, x_hi] = valid_columns(g, j);
    const std::int64_t iy = y_lo - o.padding[0] + i * o.dilation[0];
    f(r, c * g.h * g.w + iy * g.w + j * o.dilation[1] - o.padding[1], y_lo, y_hi - y_lo, x_lo,
      x_hi);
  }
}

template <class T>
void im2col_same_width(const ConvGeometry& g, std::int64_t group, const T* image, T* cols) {
  const std::int64_t w = g.ow;
  const auto copy_run = [&](std::int64_t r, std::int64_t start, std::int64_t y0, std::int64_t rows,
                            std::int64_t lo, std::int64_t hi) {
    T* row = cols + r * g.pixels();
    std::fill(row, row + y0 * w, T(0));
    T* run = row + y0 * w;
    const std::int64_t length = rows * w;
    if (rows > 0 && hi > lo)
      std::copy(image + (start + lo), image + (start + length - (w - hi)), run + lo);
    for (std::int64_t y = 0; y < rows; ++y) {
      std::fill(run + y * w, run + y * w + lo, T(0));
      std::fill(run + y * w + hi, run + (y + 1) * w, T(0));
    }
    std::fill(run + length, row + g.pixels(), T(0));
  };
  for_each_same_width_run(g, group, copy_run);
}

// The adjoint: the wrapped columns of the run are cleared in dcols (a scratch buffer) first, so
// that the one addition over the run adds nothing where the tap read padding.
template <class T>
void col2im_same_width(const ConvGeometry& g, std::int64_t group, T* dcols, T* dimage) {
  const std::int64_t w = g.ow;
  const auto add_run = [&](std::int64_t r, std::int64_t start, std::int64_t y0, std::int64_t rows,
                           std::int64_t lo, std::int64_t hi) {
    if (rows == 0 || hi <= lo) return;
    T* run = dcols + r * g.pixels() + y0 * w;
    for (std::int64_t y = 0; y < rows; ++y) {
      std::fill(run + y * w, run + y * w + lo, T(0));
      std::fill(run + y * w + hi, run + (y + 1) * w, T(0));
    }
    const std::int64_t end = rows * w - (w - hi);
    T* in = dimage + (start + lo);  // the run's first valid element
    for (std::int64_t k = 0; k < end - lo; ++k) in[k] += run[lo + k];
  };
  for_each_same_width_run(g, group, add_run);
}

// cols[r, p] for one image and r = (c, i, j) within group `group`: the input pixel that kernel
// tap (i, j) of output pixel p reads, or 0 in the padding.
template <class T>
void im2col(const ConvGeometry& g, std::int64_t group, const T* image, T* cols) {
  if (same_width_unit_stride(g)) return im2col_same_width(g, group, image, cols);
  const auto& o = g.options;
  for (std::int64_t r = 0; r < g.patch(); ++r) {
    const std::int64_t c = group * g.cg + r / (g.kh * g.kw);
    const std::int64_t i = r / g.kw % g.kh, j = r % g.kw;
    const std::int64_t offset = j * o.dilation[1] - o.padding[1];  // ix = x0 * stride + offset
    const auto [lo, hi] = valid_columns(g, j);
    const T* plane = image + c * g.h * g.w;
    T* row = cols + r * g.pixels();
    for (std::int64_t y = 0; y < g.oh; ++y) {
      const std::int64_t iy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
      T* out_row = row + y * g.ow;
      if (iy < 0 || iy >= g.h) {
        std::fill_n(out_row, g.ow, T(0));
        continue;
      }
      const T* in_row = plane + iy * g.w;
      std::fill(out_row, out_row + lo, T(0));
      if (o.stride[1] == 1) {
        std::copy(in_row + lo + offset, in_row + hi + offset, out_row + lo);
      } else {
        for (std::int64_t x0 = lo; x0 < hi; ++x0) out_row[x0] = in_row[x0 * o.stride[1] + offset];
      }
      std::fill(out_row + hi, out_row + g.ow, T(0));
    }
  }
}

// The adjoint of im2col for one image: dimage[c, iy, ix] += dcols[r, p]. dcols is scratch, and
// may be changed.
template <class T>
void col2im(const ConvGeometry& g, std::int64_t group, T* dcols, T* dimage) {
  if (same_width_unit_stride(g)) return col2im_same_width(g, group, dcols, dimage);
  const auto& o = g.options;
  for (std::int64_t r = 0; r < g.patch(); ++r) {
    const std::int64_t c = group * g.cg + r / (g.kh * g.kw);
    const std::int64_t i = r / g.kw % g.kh, j = r % g.kw;
    const std::int64_t offset = j * o.dilation[1] - o.padding[1];
    const auto [lo, hi] = valid_columns(g, j);
    T* plane = dimage + c * g.h * g.w;
    const T* row = dcols + r * g.pixels();
    for (std::int64_t y = 0; y < g.oh; ++y) {
      const std::int64_t iy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
      if (iy < 0 || iy >= g.h) continue;
      T* dst = plane + iy * g.w;
      const T* src = row + y * g.ow;
      if (o.stride[1] == 1) {  // contiguous, so the compiler vectorises it
        T* shifted = dst + offset;
        for (std::int64_t x0 = lo; x0 < hi; ++x0) shifted[x0] += src[x0];
      } else {
        for (std::int64_t x0 = lo; x0 < hi; ++x0) dst[x0 * o.stride[1] + offset] += src[x0];
      }
    }
  }
}

// The geometry as Winograd's F(2x2, 3x3) sees it, where it applies (3x3, stride 1); the callers
// ask only for float32 convolutions.
std::optional<detail::WinogradShape> winograd_shape(const ConvGeometry& g) {
  const auto& o = g.options;
  if (!detail::winograd_applies(g.kh, g.kw, o.stride[0], o.stride[1], o.dilation[0], o.dilation[1],
                                g.groups, g.c, g.o))
    return std::nullopt;
  return detail::WinogradShape{g.n, g.c, g.h, g.w, g.o, o.padding[0], o.padding[1]};
}

// The geometry as the one-channel kernel with its pool sees it, where it applies (3x3, stride 1,
// one input channel); the callers ask only for float32 convolutions.
std::optional<detail::OneChannelShape> one_channel_shape(const ConvGeometry& g) {
  const auto& o = g.options;
  if (!detail::one_channel_applies(g.c, g.kh, g.kw, o.stride[0], o.stride[1], o.dilation[0],
                                   o.dilation[1], g.groups))
    return std::nullopt;
  return detail::OneChannelShape{g.n, g.h, g.w, g.o, o.padding[0], o.padding[1]};
}

// A scratch buffer from the storage cache: after the first step it costs no fresh pages.
template <class T>
Tensor scratch(std::int64_t elements) {
  return Tensor::empty({elements}, dtype_of<T>());
}

// Images are shared out over the kernel thread pool; each runs its own small GEMMs on
// single-threaded BLAS, with its columns (one image: Cg*KH*KW x OH*OW) in cache. OpenBLAS's own
// threads on GEMMs this small spend more time handing off (and spinning) than computing.
template <class T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, bool relu, T* out) {
  if constexpr (std::is_same_v<T, float>)
    if (const auto shape = winograd_shape(g)) {
      const Tensor filters = detail::winograd_filters(*shape, w);
      return detail::winograd_forward(*shape, x, filters.data<float>(), bias, {relu}, out);
    }
  detail::SingleThreadedBlas blas_on_each_pool_thread;
  parallel_for(g.n, 1, [&](std::int64_t begin, std::int64_t end) {
    Tensor cols_buffer = scratch<T>(g.patch() * g.pixels());
    T* cols = cols_buffer.data<T>();
    for (std::int64_t n = begin; n < end; ++n) {
      for (std::int64_t group = 0; group < g.groups; ++group) {
        T* y = out + (n * g.o + group * g.og) * g.pixels();  // [Og, P]
        for (std::int64_t oc = 0; oc < g.og; ++oc)
          std::fill_n(y + oc * g.pixels(), g.pixels(), bias ? bias[group * g.og + oc] : T(0));
        im2col(g, group, x + n * g.c * g.h * g.w, cols);
        detail::gemm<T>(false, false, g.og, g.pixels(), g.patch(), T(1),
                        w + group * g.og * g.patch(), g.patch(), cols, g.pixels(), T(1), y,
                        g.pixels());
        if (relu)  // while the block is in cache; NaN becomes 0, as relu does
          for (std::int64_t i = 0; i < g.og * g.pixels(); ++i) y[i] = y[i] > 0 ? y[i] : T(0);
      }
    }
  });
}

struct ConvGradients {
  Tensor input, weight, bias;
};

// Channels shared out over the pool: on the calling thread alone this pass over the output
// gradient was 2.7% of the CNN step's CPU samples, with the other core idle meanwhile.
template <class T>
void bias_gradient(const ConvGeometry& g, const T* grad, T* db) {
  parallel_for(g.o, detail::grain_for(g.n * g.pixels()), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t oc = begin; oc < end; ++oc) {
      double sum = 0;
      for (std::int64_t n = 0; n < g.n; ++n)
        sum += detail::row_sum(grad + (n * g.o + oc) * g.pixels(), g.pixels());
      db[oc] = static_cast<T>(sum);
    }
  });
}

template <class T>
void conv_backward(const ConvGeometry& g, const T* x, const T* w, const T* grad,
                   const std::vector<bool>& needs, ConvGradients& out) {
  if (needs[2]) bias_gradient(g, grad, out.bias.data<T>());
  if constexpr (std::is_same_v<T, float>)
    if (const auto shape = winograd_shape(g))
      return detail::winograd_backward(*shape, x, w, grad, needs[0] ? out.input.data<T>() : nullptr,
                                       needs[1] ? out.weight.data<T>() : nullptr);
  detail::SingleThreadedBlas blas_on_each_pool_thread;
  std::mutex merge;
  // col2im adds each image's column gradients into dx (Winograd's path writes it whole).
  if (needs[0]) std::fill_n(out.input.data<T>(), out.input.numel(), T(0));
  if (needs[1]) std::fill_n(out.weight.data<T>(), out.weight.numel(), T(0));
  parallel_for(g.n, 1, [&](std::int64_t begin, std::int64_t end) {
    Tensor cols_buffer = scratch<T>(g.patch() * g.pixels());
    T* cols = cols_buffer.data<T>();
    // This thread's share of the weight gradient, added to the total once at the end.
    Tensor partial = needs[1] ? Tensor::zeros(out.weight.shape(), out.weight.dtype()) : Tensor();
    for (std::int64_t n = begin; n < end; ++n) {
      for (std::int64_t group = 0; group < g.groups; ++group) {
        const T* gy = grad + (n * g.o + group * g.og) * g.pixels();  // [Og, P]
        const T* wg = w + group * g.og * g.patch();                  // [Og, K]
        if (needs[1]) {
          im2col(g, group, x + n * g.c * g.h * g.w, cols);
          detail::gemm<T>(false, true, g.og, g.patch(), g.pixels(), T(1), gy, g.pixels(), cols,
                          g.pixels(), T(1), partial.data<T>() + group * g.og * g.patch(),
                          g.patch());
        }
        if (needs[0]) {
          detail::gemm<T>(true, false, g.patch(), g.pixels(), g.og, T(1), wg, g.patch(), gy,
                          g.pixels(), T(0), cols, g.pixels());
          col2im(g, group, cols, out.input.data<T>() + n * g.c * g.h * g.w);
        }
      }
    }
    if (needs[1]) {
      std::lock_guard lock(merge);
      T* total = out.weight.data<T>();
      const T* mine = partial.data<T>();
      for (std::int64_t i = 0; i < partial.numel(); ++i) total[i] += mine[i];
    }
  });
}

}  // namespace

std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                              std::int64_t padding, std::int64_t dilation) {
  // Where the window does not fit, 0 (C++'s division truncates toward zero, so a short input
  // with a stride of 2 or more would otherwise get one output, read from beyond its end).
  const std::int64_t span = in + 2 * padding - dilation * (kernel - 1) - 1;
  return span < 0 ? 0 : span / stride + 1;
}

namespace {

Tensor conv2d_forward(const ConvGeometry& g, const Tensor& input, const Tensor& weight,
                      const Tensor& bias, bool relu) {
  Tensor out = Tensor::empty({g.n, g.o, g.oh, g.ow}, input.dtype());
  detail::dispatch_floating(input.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv_forward<T>(g, input.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                    relu, out.data<T>());
  });
  return out;
}

}  // namespace

namespace detail {

FrozenConv2d::FrozenConv2d(Tensor weight, Tensor bias, Conv2dOptions options, ConvEpilogue epilogue)
    : weight_(std::move(weight)), bias_(std::move(bias)), options_(options), epilogue_(epilogue) {
  if (epilogue.max_pool && !epilogue.relu)
    throw Error("internal: a frozen convolution pools only after relu");
  const auto& o = options_;
  if (weight_.dtype() == DType::Float32 && weight_.dim() == 4 &&
      winograd_applies(weight_.size(2), weight_.size(3), o.stride[0], o.stride[1], o.dilation[0],
                       o.dilation[1], o.groups, weight_.size(1), weight_.size(0)))
    filters_ =
        winograd_filters({1, weight_.size(1), 3, 3, weight_.size(0), 0, 0}, weight_.data<float>());
}

Tensor FrozenConv2d::forward(const Tensor& input) const {
  const ConvGeometry g = conv_geometry(input, weight_, bias_, options_);
  const float* bias =
      bias_.defined() && input.dtype() == DType::Float32 ? bias_.data<float>() : nullptr;
  // A fused pool needs at least one window; below that, max_pool2d's own error.
  const bool pool = epilogue_.max_pool, fits = !pool || (g.oh >= 2 && g.ow >= 2);
  const Shape shape{g.n, g.o, pool ? g.oh / 2 : g.oh, pool ? g.ow / 2 : g.ow};
  if (input.dtype() == DType::Float32 && fits) {
    if (filters_.defined()) {
      Tensor out = Tensor::empty(shape);
      winograd_forward(*winograd_shape(g), input.data<float>(), filters_.data<float>(), bias,
                       epilogue_, out.data<float>());
      return out;
    }
    const auto one = pool ? one_channel_shape(g) : std::nullopt;
    if (one) {
      Tensor out = Tensor::empty(shape);
      one_channel_relu_pool(*one, input.data<float>(), weight_.data<float>(), bias,
                            out.data<float>());
      return out;
    }
  }
  Tensor out = conv2d_forward(g, input, weight_, bias_, epilogue_.relu);
  return pool ? max_pool2d(out, Pool2dOptions{}) : out;
}

}  // namespace detail

Tensor conv2d_relu(const Tensor& input, const Tensor& weight, const Tensor& bias,
                   const Conv2dOptions& options) {
  if (should_record({&input, &weight, &bias})) return relu(conv2d(input, weight, bias, options));
  return conv2d_forward(conv_geometry(input, weight, bias, options), input, weight, bias, true);
}

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dOptions& options) {
  const ConvGeometry g = conv_geometry(input, weight, bias, options);
  Tensor out = conv2d_forward(g, input, weight, bias, false);
  if (!should_record({&input, &weight, &bias})) return out;
  return record(Op::Conv2d, out, {input, weight, bias},
                [g, x = input.detach(), w = weight.detach()](const Tensor& grad,
                                                             const std::vector<bool>& needs) {
                  ConvGradients result;
                  if (needs[0]) result.input = Tensor::empty(x.shape(), x.dtype());
                  if (needs[1]) result.weight = Tensor::empty(w.shape(), w.dtype());
                  if (needs[2]) result.bias = Tensor::empty({g.o}, w.dtype());
                  detail::dispatch_floating(x.dtype(), "conv2d", [&](auto tag) {
                    using T = decltype(tag);
                    conv_backward<T>(g, x.data<T>(), w.data<T>(), grad.data<T>(), needs, result);
                  });
                  return std::vector<Tensor>{result.input, result.weight, result.bias};
                });
}

}  // namespace lathe
