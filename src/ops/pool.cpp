// 2-D max and average pooling on NCHW tensors.
#include <fmt/format.h>

#include <algorithm>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/ops/kernels.h"
#include "src/ops/max_pool_rows.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

struct PoolGeometry {
  std::int64_t planes, h, w, oh, ow;
  Pool2dOptions options;
  std::int64_t plane_grain() const { return detail::grain_for(h * w); }
};

PoolGeometry pool_geometry(const char* op, const Tensor& input, const Pool2dOptions& options) {
  detail::require_defined(op, input);
  detail::require_floating(op, input);
  if (input.dim() != 4)
    throw Error(fmt::format("{}: input {} is not [N,C,H,W]", op, shape_str(input.shape())));
  detail::require_positive_pair(op, "kernel size", options.kernel, 1);
  detail::require_positive_pair(op, "stride", options.stride, 1);
  detail::require_positive_pair(op, "padding", options.padding, 0);
  if (options.padding[0] * 2 > options.kernel[0] || options.padding[1] * 2 > options.kernel[1])
    throw Error(fmt::format("{}: padding ({}, {}) must be at most half the kernel ({}, {})", op,
                            options.padding[0], options.padding[1], options.kernel[0],
                            options.kernel[1]));
  PoolGeometry g{};
  g.options = options;
  g.planes = input.size(0) * input.size(1), g.h = input.size(2), g.w = input.size(3);
  g.oh = conv_output_size(g.h, options.kernel[0], options.stride[0], options.padding[0], 1);
  g.ow = conv_output_size(g.w, options.kernel[1], options.stride[1], options.padding[1], 1);
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
  parallel_for(g.planes, g.plane_grain(), [&](std::int64_t begin, std::int64_t end) {
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

// One plane's maxima and, for the backward pass, where each came from (`from` nullptr: no
// backward pass, as in inference, where writing the int64 positions took half the pool's time).
template <class T>
void max_pool_plane(const PoolGeometry& g, const T* in, T* out, std::int64_t* from) {
  const auto& o = g.options;
  const bool two_by_two = o.kernel == std::array<std::int64_t, 2>{2, 2} &&
                          o.stride == std::array<std::int64_t, 2>{2, 2} &&
                          o.padding == std::array<std::int64_t, 2>{0, 0};
  if (two_by_two) {  // the common case, with no clipping
    detail::max_pool_plane_2x2(in, g.h, g.w, out, from);
    return;
  }
  for (std::int64_t y = 0; y < g.oh; ++y) {
    const std::int64_t y0 = y * o.stride[0] - o.padding[0];
    const std::int64_t ylo = std::max<std::int64_t>(y0, 0), yhi = std::min(y0 + o.kernel[0], g.h);
    for (std::int64_t x = 0; x < g.ow; ++x) {
      const std::int64_t x0 = x * o.stride[1] - o.padding[1];
      const std::int64_t xlo = std::max<std::int64_t>(x0, 0), xhi = std::min(x0 + o.kernel[1], g.w);
      std::int64_t best = ylo * g.w + xlo;
      T value = in[best];
      for (std::int64_t iy = ylo; iy < yhi; ++iy)
        for (std::int64_t ix = xlo; ix < xhi; ++ix)
          detail::keep_max(value, best, in[iy * g.w + ix], iy * g.w + ix);
      out[y * g.ow + x] = value;
      if (from) from[y * g.ow + x] = best;
    }
  }
}

// max_pool2d's input gradient: zeros, and each output's gradient added where its maximum came
// from. Each plane is zeroed just before its scatter, while it is in cache: zeroing the whole
// tensor first made the scatter read it back from memory (1.3-1.5x as long on the CNN's pools).
Tensor max_pool_backward(const PoolGeometry& g, const Tensor& argmax, const Tensor& grad,
                         const Shape& input_shape) {
  Tensor dx = Tensor::empty(input_shape, grad.dtype());
  detail::dispatch_floating(grad.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* gy = grad.data<T>();
    T* gx = dx.data<T>();
    const std::int64_t per_plane = g.oh * g.ow;
    const std::int64_t* from = argmax.data<std::int64_t>();
    parallel_for(g.planes, g.plane_grain(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t plane = begin; plane < end; ++plane) {
        T* in = gx + plane * g.h * g.w;
        std::fill(in, in + g.h * g.w, T(0));
        for (std::int64_t o = 0; o < per_plane; ++o)
          in[from[plane * per_plane + o]] += gy[plane * per_plane + o];
      }
    });
  });
  return dx;
}

}  // namespace

Tensor max_pool2d(const Tensor& input, const Pool2dOptions& options) {
  const PoolGeometry g = pool_geometry("max_pool2d", input, options);
  Tensor out = Tensor::empty(pooled_shape(input, g), input.dtype());
  const bool recorded = should_record({&input});
  // Where each output's maximum came from, as an index into its input plane, for the backward
  // pass (a tensor, so its memory comes from the storage cache).
  const Tensor argmax = recorded ? Tensor::empty(out.shape(), DType::Int64) : Tensor();
  detail::dispatch_floating(input.dtype(), "max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data<T>();
    T* y = out.data<T>();
    std::int64_t* from = recorded ? Tensor(argmax).data<std::int64_t>() : nullptr;
    parallel_for(g.planes, g.plane_grain(), [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t plane = begin; plane < end; ++plane)
        max_pool_plane(g, x + plane * g.h * g.w, y + plane * g.oh * g.ow,
                       from ? from + plane * g.oh * g.ow : nullptr);
    });
  });
  if (!recorded) return out;
  return record(Op::MaxPool2d, out, {input},
                [g, argmax, shape = input.shape()](const Tensor& grad, const std::vector<bool>&) {
                  return std::vector<Tensor>{max_pool_backward(g, argmax, grad, shape)};
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
