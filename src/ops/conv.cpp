// 2-D convolution and pooling on NCHW tensors.
//
// conv2d lowers each group to one GEMM over the whole batch: im2col writes the input patches as
// columns [Cg*KH*KW, N*OH*OW], the weights [Og, Cg*KH*KW] multiply them, and the result is
// scattered into [N, O, OH, OW] with the bias. Backward recomputes the columns (cheaper in
// memory than keeping them) and uses two more GEMMs: the weight gradient against the columns and
// the column gradient, which col2im adds back into the input's shape.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <memory>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
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

std::int64_t output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                         std::int64_t padding, std::int64_t dilation) {
  return (in + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1;
}

void require_positive_pair(const char* op, const char* what, const std::array<std::int64_t, 2>& v,
                           std::int64_t minimum) {
  if (v[0] < minimum || v[1] < minimum)
    throw Error(
        fmt::format("{}: {} must be at least {}, got ({}, {})", op, what, minimum, v[0], v[1]));
}

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
  require_positive_pair(op, "stride", options.stride, 1);
  require_positive_pair(op, "dilation", options.dilation, 1);
  require_positive_pair(op, "padding", options.padding, 0);
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
  g.oh = output_size(g.h, g.kh, options.stride[0], options.padding[0], options.dilation[0]);
  g.ow = output_size(g.w, g.kw, options.stride[1], options.padding[1], options.dilation[1]);
  if (g.oh < 1 || g.ow < 1)
    throw Error(
        fmt::format("conv2d: input {} is smaller than the {}x{} kernel (dilation {}, "
                    "padding {})",
                    shape_str(input.shape()), g.kh, g.kw, options.dilation[0], options.padding[0]));
  return g;
}

// cols[r, n * P + p] for r = (c, i, j) within group `group`: the input pixel kernel tap (i, j)
// of output pixel p reads, or 0 in the padding.
template <class T>
void im2col(const ConvGeometry& g, std::int64_t group, const T* x, T* cols) {
  const auto& o = g.options;
  parallel_for(g.patch(), 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const std::int64_t c = group * g.cg + r / (g.kh * g.kw);
      const std::int64_t i = r / g.kw % g.kh, j = r % g.kw;
      T* row = cols + r * g.columns();
      for (std::int64_t n = 0; n < g.n; ++n) {
        const T* plane = x + (n * g.c + c) * g.h * g.w;
        T* out = row + n * g.pixels();
        for (std::int64_t y = 0; y < g.oh; ++y) {
          const std::int64_t iy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
          T* out_row = out + y * g.ow;
          if (iy < 0 || iy >= g.h) {
            std::fill_n(out_row, g.ow, T(0));
            continue;
          }
          const T* in_row = plane + iy * g.w;
          for (std::int64_t x0 = 0; x0 < g.ow; ++x0) {
            const std::int64_t ix = x0 * o.stride[1] - o.padding[1] + j * o.dilation[1];
            out_row[x0] = ix >= 0 && ix < g.w ? in_row[ix] : T(0);
          }
        }
      }
    }
  });
}

// The adjoint of im2col: dx[n, c, iy, ix] += dcols[r, n * P + p]. Each channel's rows are
// handled by one thread, so no two threads add into the same element.
template <class T>
void col2im(const ConvGeometry& g, std::int64_t group, const T* dcols, T* dx) {
  const auto& o = g.options;
  parallel_for(g.cg, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t cl = begin; cl < end; ++cl) {
      const std::int64_t c = group * g.cg + cl;
      for (std::int64_t i = 0; i < g.kh; ++i)
        for (std::int64_t j = 0; j < g.kw; ++j) {
          const T* row = dcols + ((cl * g.kh + i) * g.kw + j) * g.columns();
          for (std::int64_t n = 0; n < g.n; ++n) {
            T* plane = dx + (n * g.c + c) * g.h * g.w;
            const T* in = row + n * g.pixels();
            for (std::int64_t y = 0; y < g.oh; ++y) {
              const std::int64_t iy = y * o.stride[0] - o.padding[0] + i * o.dilation[0];
              if (iy < 0 || iy >= g.h) continue;
              for (std::int64_t x0 = 0; x0 < g.ow; ++x0) {
                const std::int64_t ix = x0 * o.stride[1] - o.padding[1] + j * o.dilation[1];
                if (ix >= 0 && ix < g.w) plane[iy * g.w + ix] += in[y * g.ow + x0];
              }
            }
          }
        }
    }
  });
}

// [Og, N*P] (one group's GEMM result) <-> [N, O, P] (the output layout).
template <class T>
void scatter_group(const ConvGeometry& g, std::int64_t group, const T* from, const T* bias,
                   T* out) {
  parallel_for(g.og, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t oc = begin; oc < end; ++oc) {
      const std::int64_t channel = group * g.og + oc;
      const T b = bias ? bias[channel] : T(0);
      for (std::int64_t n = 0; n < g.n; ++n) {
        const T* src = from + oc * g.columns() + n * g.pixels();
        T* dst = out + (n * g.o + channel) * g.pixels();
        for (std::int64_t p = 0; p < g.pixels(); ++p) dst[p] = src[p] + b;
      }
    }
  });
}

template <class T>
void gather_group(const ConvGeometry& g, std::int64_t group, const T* grad, T* to) {
  parallel_for(g.og, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t oc = begin; oc < end; ++oc)
      for (std::int64_t n = 0; n < g.n; ++n)
        std::copy_n(grad + (n * g.o + group * g.og + oc) * g.pixels(), g.pixels(),
                    to + oc * g.columns() + n * g.pixels());
  });
}

// A scratch buffer from the storage cache: after the first step it costs no fresh pages.
template <class T>
Tensor scratch(std::int64_t elements) {
  return Tensor::empty({elements}, dtype_of<T>());
}

template <class T>
void conv_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* out) {
  Tensor cols_buffer = scratch<T>(g.patch() * g.columns());
  Tensor result_buffer = scratch<T>(g.og * g.columns());
  T* cols = cols_buffer.data<T>();
  T* result = result_buffer.data<T>();
  for (std::int64_t group = 0; group < g.groups; ++group) {
    im2col(g, group, x, cols);
    detail::gemm<T>(false, false, g.og, g.columns(), g.patch(), T(1), w + group * g.og * g.patch(),
                    g.patch(), cols, g.columns(), T(0), result, g.columns());
    scatter_group(g, group, result, bias, out);
  }
}

struct ConvGradients {
  Tensor input, weight, bias;
};

template <class T>
void conv_backward(const ConvGeometry& g, const T* x, const T* w, const T* grad,
                   const std::vector<bool>& needs, ConvGradients& out) {
  Tensor cols_buffer = scratch<T>(g.patch() * g.columns());
  Tensor grad_buffer = scratch<T>(g.og * g.columns());
  T* cols = cols_buffer.data<T>();
  T* grad_group = grad_buffer.data<T>();
  for (std::int64_t group = 0; group < g.groups; ++group) {
    gather_group(g, group, grad, grad_group);
    if (needs[1]) {
      im2col(g, group, x, cols);
      detail::gemm<T>(false, true, g.og, g.patch(), g.columns(), T(1), grad_group, g.columns(),
                      cols, g.columns(), T(0), out.weight.data<T>() + group * g.og * g.patch(),
                      g.patch());
    }
    if (needs[0]) {
      detail::gemm<T>(true, false, g.patch(), g.columns(), g.og, T(1), w + group * g.og * g.patch(),
                      g.patch(), grad_group, g.columns(), T(0), cols, g.columns());
      col2im(g, group, cols, out.input.data<T>());
    }
  }
  if (needs[2]) {
    T* db = out.bias.data<T>();
    for (std::int64_t oc = 0; oc < g.o; ++oc) {
      T sum = 0;
      for (std::int64_t n = 0; n < g.n; ++n) {
        const T* plane = grad + (n * g.o + oc) * g.pixels();
        for (std::int64_t p = 0; p < g.pixels(); ++p) sum += plane[p];
      }
      db[oc] = sum;
    }
  }
}

// ---- Pooling ----

struct PoolGeometry {
  std::int64_t planes, h, w, oh, ow;
  Pool2dOptions options;
};

PoolGeometry pool_geometry(const char* op, const Tensor& input, const Pool2dOptions& options) {
  detail::require_defined(op, input);
  detail::require_floating(op, input);
  if (input.dim() != 4)
    throw Error(fmt::format("{}: input {} is not [N,C,H,W]", op, shape_str(input.shape())));
  require_positive_pair(op, "kernel size", options.kernel, 1);
  require_positive_pair(op, "stride", options.stride, 1);
  require_positive_pair(op, "padding", options.padding, 0);
  if (options.padding[0] * 2 > options.kernel[0] || options.padding[1] * 2 > options.kernel[1])
    throw Error(fmt::format("{}: padding ({}, {}) must be at most half the kernel ({}, {})", op,
                            options.padding[0], options.padding[1], options.kernel[0],
                            options.kernel[1]));
  PoolGeometry g{};
  g.options = options;
  g.planes = input.size(0) * input.size(1), g.h = input.size(2), g.w = input.size(3);
  g.oh = output_size(g.h, options.kernel[0], options.stride[0], options.padding[0], 1);
  g.ow = output_size(g.w, options.kernel[1], options.stride[1], options.padding[1], 1);
  if (g.oh < 1 || g.ow < 1)
    throw Error(fmt::format("{}: input {} is smaller than the {}x{} window", op,
                            shape_str(input.shape()), options.kernel[0], options.kernel[1]));
  return g;
}

Shape pooled_shape(const Tensor& input, const PoolGeometry& g) {
  return {input.size(0), input.size(1), g.oh, g.ow};
}

// Calls f(out_index, iy, ix) for every input pixel inside output pixel out_index's window
// (padding excluded), plane by plane in parallel; f gets the plane index too.
template <class F>
void for_each_window(const PoolGeometry& g, F f) {
  const auto& o = g.options;
  parallel_for(g.planes, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t plane = begin; plane < end; ++plane)
      for (std::int64_t y = 0; y < g.oh; ++y)
        for (std::int64_t x = 0; x < g.ow; ++x) {
          const std::int64_t y0 = y * o.stride[0] - o.padding[0];
          const std::int64_t x0 = x * o.stride[1] - o.padding[1];
          f(plane, y * g.ow + x, std::max<std::int64_t>(y0, 0), std::min(y0 + o.kernel[0], g.h),
            std::max<std::int64_t>(x0, 0), std::min(x0 + o.kernel[1], g.w));
        }
  });
}

}  // namespace

Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias,
              const Conv2dOptions& options) {
  const ConvGeometry g = conv_geometry(input, weight, bias, options);
  Tensor out = Tensor::empty({g.n, g.o, g.oh, g.ow}, input.dtype());
  detail::dispatch_floating(input.dtype(), "conv2d", [&](auto tag) {
    using T = decltype(tag);
    conv_forward<T>(g, input.data<T>(), weight.data<T>(), bias.defined() ? bias.data<T>() : nullptr,
                    out.data<T>());
  });
  if (!should_record({&input, &weight, &bias})) return out;
  return record(Op::Conv2d, out, {input, weight, bias},
                [g, x = input.detach(), w = weight.detach()](const Tensor& grad,
                                                             const std::vector<bool>& needs) {
                  ConvGradients result;
                  if (needs[0]) result.input = Tensor::zeros(x.shape(), x.dtype());
                  if (needs[1]) result.weight = Tensor::empty(w.shape(), w.dtype());
                  if (needs[2]) result.bias = Tensor::empty({g.o}, w.dtype());
                  detail::dispatch_floating(x.dtype(), "conv2d", [&](auto tag) {
                    using T = decltype(tag);
                    conv_backward<T>(g, x.data<T>(), w.data<T>(), grad.data<T>(), needs, result);
                  });
                  return std::vector<Tensor>{result.input, result.weight, result.bias};
                });
}

Tensor max_pool2d(const Tensor& input, const Pool2dOptions& options) {
  const PoolGeometry g = pool_geometry("max_pool2d", input, options);
  Tensor out = Tensor::empty(pooled_shape(input, g), input.dtype());
  // Where each output's maximum came from, as an index into its input plane.
  auto argmax =
      std::make_shared<std::vector<std::int32_t>>(static_cast<std::size_t>(g.planes * g.oh * g.ow));
  if (g.h * g.w > std::numeric_limits<std::int32_t>::max())
    throw Error(fmt::format("max_pool2d: input planes of {}x{} are too large", g.h, g.w));
  detail::dispatch_floating(input.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data<T>();
    T* y = out.data<T>();
    std::int32_t* from = argmax->data();
    for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t y0, std::int64_t y1,
                           std::int64_t x0, std::int64_t x1) {
      const T* in = x + plane * g.h * g.w;
      std::int64_t best = y0 * g.w + x0;
      for (std::int64_t iy = y0; iy < y1; ++iy)
        for (std::int64_t ix = x0; ix < x1; ++ix) {
          const std::int64_t at = iy * g.w + ix;
          // NaN wins, as in PyTorch, so it propagates instead of hiding.
          if (in[at] > in[best] || std::isnan(in[at])) best = at;
        }
      y[plane * g.oh * g.ow + o] = in[best];
      from[plane * g.oh * g.ow + o] = static_cast<std::int32_t>(best);
    });
  });
  if (!should_record({&input})) return out;
  return record(Op::MaxPool2d, out, {input},
                [g, argmax, shape = input.shape()](const Tensor& grad, const std::vector<bool>&) {
                  Tensor dx = Tensor::zeros(shape, grad.dtype());
                  detail::dispatch_floating(grad.dtype(), "max_pool2d", [&](auto tag) {
                    using T = decltype(tag);
                    const T* gy = grad.data<T>();
                    T* gx = dx.data<T>();
                    const std::int64_t per_plane = g.oh * g.ow;
                    parallel_for(g.planes, 1, [&](std::int64_t begin, std::int64_t end) {
                      for (std::int64_t plane = begin; plane < end; ++plane)
                        for (std::int64_t o = 0; o < per_plane; ++o)
                          gx[plane * g.h * g.w + (*argmax)[plane * per_plane + o]] +=
                              gy[plane * per_plane + o];
                    });
                  });
                  return std::vector<Tensor>{dx};
                });
}

// Divides by the whole window, padding included (PyTorch's count_include_pad = true).
Tensor avg_pool2d(const Tensor& input, const Pool2dOptions& options) {
  const PoolGeometry g = pool_geometry("avg_pool2d", input, options);
  Tensor out = Tensor::empty(pooled_shape(input, g), input.dtype());
  const double area = static_cast<double>(options.kernel[0] * options.kernel[1]);
  detail::dispatch_floating(input.dtype(), "avg_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data<T>();
    T* y = out.data<T>();
    for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t y0, std::int64_t y1,
                           std::int64_t x0, std::int64_t x1) {
      const T* in = x + plane * g.h * g.w;
      T sum = 0;
      for (std::int64_t iy = y0; iy < y1; ++iy)
        for (std::int64_t ix = x0; ix < x1; ++ix) sum += in[iy * g.w + ix];
      y[plane * g.oh * g.ow + o] = static_cast<T>(sum / area);
    });
  });
  if (!should_record({&input})) return out;
  return record(Op::AvgPool2d, out, {input},
                [g, area, shape = input.shape()](const Tensor& grad, const std::vector<bool>&) {
                  Tensor dx = Tensor::zeros(shape, grad.dtype());
                  detail::dispatch_floating(grad.dtype(), "avg_pool2d", [&](auto tag) {
                    using T = decltype(tag);
                    const T* gy = grad.data<T>();
                    T* gx = dx.data<T>();
                    for_each_window(g, [&](std::int64_t plane, std::int64_t o, std::int64_t y0,
                                           std::int64_t y1, std::int64_t x0, std::int64_t x1) {
                      const T share = static_cast<T>(gy[plane * g.oh * g.ow + o] / area);
                      T* in = gx + plane * g.h * g.w;
                      for (std::int64_t iy = y0; iy < y1; ++iy)
                        for (std::int64_t ix = x0; ix < x1; ++ix) in[iy * g.w + ix] += share;
                    });
                  });
                  return std::vector<Tensor>{dx};
                });
}

}  // namespace lathe
