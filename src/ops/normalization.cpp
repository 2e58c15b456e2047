// Batch normalization over axis 1 (PyTorch's F.batch_norm): per channel statistics over the
// batch and every axis after the channels.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <tuple>
#include <utility>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/ops/kernels.h"
#include "src/ops/max_pool_rows.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

struct Layout {
  std::int64_t n, c, s;  // [N, C, S]: S is the product of the axes after the channels
  std::int64_t at(std::int64_t i, std::int64_t ch, std::int64_t j) const {
    return (i * c + ch) * s + j;
  }
  std::int64_t count() const { return n * s; }  // values per channel
  std::int64_t channel_grain() const { return detail::grain_for(count()); }
};

// Per channel: the statistics used to normalize (batch or running) as mean and 1/sqrt(var+eps),
// and the affine map the forward applied, y = scale x + shift, in the input's type
// (batch_norm_relu's backward recomputes it to tell where the relu let the gradient through).
struct Statistics {
  explicit Statistics(std::int64_t channels)
      : mean(channels), inverse_std(channels), scale(channels), shift(channels) {}
  std::vector<double> mean, inverse_std, scale, shift;
};

// The normalized value, before the relu. The forward and batch_norm_relu's backward both compute
// it with this one expression from the same scale and shift, so they agree on every sign.
template <class T>
[[gnu::always_inline]] inline T normalized(T x, T scale, T shift) {
  return x * scale + shift;
}

// The row reductions stay out of line (noinline): inlined into the per-channel loops, GCC 12
// added up the partial sums with scalar moves through general registers, and the training forward
// on the CNN's [64, 32, 28, 28] took 2.4 ms on one thread instead of 1.8 ms (backward gains too).
// detail::row_sum (kernels.h) is the other one.

// sum_j a[j] * (b[j] - center).
template <class T>
[[gnu::noinline]] double row_dot_centered(const T* a, const T* b, double center, std::int64_t n) {
  const T c = static_cast<T>(center);
  T acc[detail::kPartialSums] = {};
  std::int64_t j = 0;
  for (; j + detail::kPartialSums <= n; j += detail::kPartialSums)
    for (int k = 0; k < detail::kPartialSums; ++k) acc[k] += a[j + k] * (b[j + k] - c);
  double sum = 0;
  for (int k = 0; k < detail::kPartialSums; ++k) sum += acc[k];
  for (; j < n; ++j) sum += a[j] * (b[j] - c);
  return sum;
}

// The gradient that reaches batch norm's output: g itself, or, where a ReLU followed it
// (batch_norm_relu), g where the output was positive and 0 elsewhere. The output is recomputed
// from x rather than read: one stream of memory fewer in each backward pass.
template <bool kRelu, class T>
T reaching(const T* g, const T* x, std::int64_t j, T scale, T shift) {
  const T value = g[j];  // read either way, so the select vectorises as a blend
  if constexpr (kRelu)
    return normalized(x[j], scale, shift) > 0 ? value : T(0);
  else
    return value;
}

// sum_j g[j] and sum_j g[j] * (x[j] - center) in one pass over g (batch norm's backward), g as
// `reaching` gives it.
template <bool kRelu, class T>
[[gnu::noinline]] std::pair<double, double> row_sum_and_dot_centered(const T* g, const T* x,
                                                                     double center, T scale,
                                                                     T shift, std::int64_t n) {
  const T c = static_cast<T>(center);
  T sums[detail::kPartialSums] = {}, dots[detail::kPartialSums] = {};
  std::int64_t j = 0;
  for (; j + detail::kPartialSums <= n; j += detail::kPartialSums)
    for (int k = 0; k < detail::kPartialSums; ++k) {
      const T gk = reaching<kRelu>(g, x, j + k, scale, shift);
      sums[k] += gk;
      dots[k] += gk * (x[j + k] - c);
    }
  double sum = 0, dot = 0;
  for (int k = 0; k < detail::kPartialSums; ++k) sum += sums[k], dot += dots[k];
  for (; j < n; ++j) {
    const T gj = reaching<kRelu>(g, x, j, scale, shift);
    sum += gj, dot += gj * (x[j] - c);
  }
  return {sum, dot};
}

// dx = k_g g + k_x x + k_1, g as `reaching` gives it. In evaluation k_x is 0 and x enters only
// the relu's mask, so an infinite input does not turn its gradient into NaN.
template <bool kRelu, class T>
void input_gradient_row(const T* g, const T* x, T* dx, std::int64_t n, T scale, T shift, double k_g,
                        double k_x, double k_1) {
  const T kg = static_cast<T>(k_g), kx = static_cast<T>(k_x), k1 = static_cast<T>(k_1);
  if (k_x == 0) {
    for (std::int64_t j = 0; j < n; ++j) dx[j] = reaching<kRelu>(g, x, j, scale, shift) * kg + k1;
  } else {
    for (std::int64_t j = 0; j < n; ++j)
      dx[j] = reaching<kRelu>(g, x, j, scale, shift) * kg + x[j] * kx + k1;
  }
}

// out = scale x + shift, then max(out, 0) where a ReLU follows (NaN becomes 0, as relu does).
template <class T>
void normalize_row(const T* x, T* out, std::int64_t n, T scale, T shift, bool relu) {
  if (relu) {
    for (std::int64_t j = 0; j < n; ++j) {
      const T v = normalized(x[j], scale, shift);
      out[j] = v > 0 ? v : T(0);
    }
  } else {
    for (std::int64_t j = 0; j < n; ++j) out[j] = normalized(x[j], scale, shift);
  }
}

// What the forward kernel reads besides the input: the optional per-channel tensors' data
// (null when absent) and the op's arguments.
template <class T>
struct BatchNormArgs {
  T *running_mean, *running_var;
  const T *weight, *bias;
  bool training;
  double momentum, eps;
  bool relu;  // batch_norm_relu: a ReLU follows, applied in the same pass
};

template <class T>
BatchNormArgs<T> batch_norm_args(const Tensor& running_mean, const Tensor& running_var,
                                 const Tensor& weight, const Tensor& bias, bool training,
                                 double momentum, double eps, bool relu) {
  return {.running_mean = detail::data_or_null<T>(running_mean),
          .running_var = detail::data_or_null<T>(running_var),
          .weight = detail::data_or_null<T>(weight),
          .bias = detail::data_or_null<T>(bias),
          .training = training,
          .momentum = momentum,
          .eps = eps,
          .relu = relu};
}

// Channel ch's statistics: the batch's (training; the running ones are updated in place when
// given: biased variance to normalize, unbiased in the running variance) or the running ones,
// kept in `stats` with the affine map they give with weight and bias.
template <class T>
void channel_statistics(const T* x, const Layout& l, const BatchNormArgs<T>& a, std::int64_t ch,
                        Statistics& stats) {
  double mean, var;
  if (a.training) {
    double sum = 0, squares = 0;
    for (std::int64_t i = 0; i < l.n; ++i) sum += detail::row_sum(x + l.at(i, ch, 0), l.s);
    mean = sum / static_cast<double>(l.count());
    for (std::int64_t i = 0; i < l.n; ++i)
      squares += row_dot_centered(x + l.at(i, ch, 0), x + l.at(i, ch, 0), mean, l.s);
    var = squares / static_cast<double>(l.count());
    if (a.running_mean && a.running_var) {
      T* rm = a.running_mean;
      T* rv = a.running_var;
      const double unbiased = squares / static_cast<double>(l.count() - 1);
      rm[ch] = static_cast<T>((1 - a.momentum) * rm[ch] + a.momentum * mean);
      rv[ch] = static_cast<T>((1 - a.momentum) * rv[ch] + a.momentum * unbiased);
    }
  } else {
    mean = a.running_mean[ch];
    var = a.running_var[ch];
  }
  const double inverse_std = 1.0 / std::sqrt(var + a.eps);
  stats.mean[ch] = mean;
  stats.inverse_std[ch] = inverse_std;
  const double gamma = a.weight ? a.weight[ch] : 1.0;
  const double beta = a.bias ? a.bias[ch] : 0.0;
  stats.scale[ch] = static_cast<T>(gamma * inverse_std);
  stats.shift[ch] = static_cast<T>(beta - mean * (gamma * inverse_std));
}

// Channel by channel, channels split over the pool: normalizes, applies weight and bias (and the
// relu), and keeps the statistics for backward.
template <class T>
void batch_norm_forward_channels(const T* x, const Layout& l, const BatchNormArgs<T>& a, T* y,
                                 Statistics& stats) {
  parallel_for(l.c, l.channel_grain(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ch = begin; ch < end; ++ch) {
      channel_statistics(x, l, a, ch, stats);
      const T scale = static_cast<T>(stats.scale[ch]), shift = static_cast<T>(stats.shift[ch]);
      for (std::int64_t i = 0; i < l.n; ++i)
        normalize_row(x + l.at(i, ch, 0), y + l.at(i, ch, 0), l.s, scale, shift, a.relu);
    }
  });
}

// One channel's gradients (dx, dw, db may each be null), its upstream gradient row for image i
// at g + i * g_stride. dx = k_g g + k_x x + k_1, expanded from gamma istd (g - sum_g / m - xhat
// sum_g_xhat / m) with xhat = (x - mean) istd; in evaluation the statistics are constants and
// dx = gamma istd g. With kRelu, g is first masked where the forward's output was not positive
// (batch_norm_relu).
template <bool kRelu, class T>
void channel_backward(const T* x, const T* g, std::int64_t g_stride, const T* w, const Layout& l,
                      const Statistics& stats, bool training, std::int64_t ch, T* dx, T* dw,
                      T* db) {
  const double mean = stats.mean[ch], inverse_std = stats.inverse_std[ch];
  const T scale = static_cast<T>(stats.scale[ch]), shift = static_cast<T>(stats.shift[ch]);
  double sum_g = 0, sum_g_centered = 0;
  for (std::int64_t i = 0; i < l.n; ++i) {
    const auto [sum, dot] = row_sum_and_dot_centered<kRelu>(g + i * g_stride, x + l.at(i, ch, 0),
                                                            mean, scale, shift, l.s);
    sum_g += sum;
    sum_g_centered += dot;
  }
  const double sum_g_xhat = sum_g_centered * inverse_std;
  if (dw) dw[ch] = static_cast<T>(sum_g_xhat);
  if (db) db[ch] = static_cast<T>(sum_g);
  if (!dx) return;
  const double gamma = w ? w[ch] : 1.0;
  const double m = static_cast<double>(l.count());
  const double k_g = gamma * inverse_std;
  const double k_x = training ? -k_g * inverse_std * sum_g_xhat / m : 0.0;
  const double k_1 = training ? -k_g * sum_g / m - k_x * mean : 0.0;
  for (std::int64_t i = 0; i < l.n; ++i) {
    const std::int64_t row = l.at(i, ch, 0);
    input_gradient_row<kRelu>(g + i * g_stride, x + row, dx + row, l.s, scale, shift, k_g, k_x,
                              k_1);
  }
}

// The gradients channel by channel, channels split over the pool.
template <bool kRelu, class T>
void batch_norm_backward_channels(const T* x, const T* g, const T* w, const Layout& l,
                                  const Statistics& stats, bool training, T* dx, T* dw, T* db) {
  parallel_for(l.c, l.channel_grain(), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t ch = begin; ch < end; ++ch)
      channel_backward<kRelu>(x, g + l.at(0, ch, 0), l.c * l.s, w, l, stats, training, ch, dx, dw,
                              db);
  });
}

// batch_norm_relu_max_pool2d's forward, channel by channel: each plane normalized and relu'd into
// scratch by batch norm's own row kernel, then pooled by max_pool2d's, so the values and the
// element picked in every window are the three ops'. The normalized tensor is never written out.
// `from` (nullptr: no backward): where each maximum came from, as an offset in its plane.
template <class T>
void batch_norm_relu_pool_channels(const T* x, const Layout& l, std::int64_t w,
                                   const BatchNormArgs<T>& a, T* out, std::int64_t* from,
                                   Statistics& stats) {
  const std::int64_t h = l.s / w, outputs = (h / 2) * (w / 2);
  parallel_for(l.c, l.channel_grain(), [&](std::int64_t begin, std::int64_t end) {
    std::vector<T> plane(static_cast<std::size_t>(l.s));
    for (std::int64_t ch = begin; ch < end; ++ch) {
      channel_statistics(x, l, a, ch, stats);
      const T scale = static_cast<T>(stats.scale[ch]), shift = static_cast<T>(stats.shift[ch]);
      for (std::int64_t i = 0; i < l.n; ++i) {
        normalize_row(x + l.at(i, ch, 0), plane.data(), l.s, scale, shift, true);
        const std::int64_t at = (i * l.c + ch) * outputs;
        detail::max_pool_plane_2x2(plane.data(), h, w, out + at, from ? from + at : nullptr);
      }
    }
  });
}

// batch_norm_relu_max_pool2d's gradients, channel by channel: each pooled gradient is added into
// zeros where its maximum came from, as max_pool2d's backward does, but into a scratch copy of
// the channel (its n planes stay in cache), and batch_norm_relu's own kernels take it from there.
// The same sums in the same order as the three ops apart.
template <class T>
void batch_norm_relu_pool_backward_channels(const T* x, const T* g, const std::int64_t* from,
                                            std::int64_t outputs, const T* w, const Layout& l,
                                            const Statistics& stats, bool training, T* dx, T* dw,
                                            T* db) {
  parallel_for(l.c, l.channel_grain(), [&](std::int64_t begin, std::int64_t end) {
    // From the storage cache: a vector this size (200 KB for the CNN's first pool) was mapped,
    // faulted in and zeroed on every call.
    Tensor scratch = Tensor::empty({l.n * l.s}, dtype_of<T>());
    T* unpooled = scratch.data<T>();
    for (std::int64_t ch = begin; ch < end; ++ch) {
      for (std::int64_t i = 0; i < l.n; ++i) {
        T* plane = unpooled + i * l.s;
        std::fill(plane, plane + l.s, T(0));
        const std::int64_t at = (i * l.c + ch) * outputs;
        for (std::int64_t o = 0; o < outputs; ++o) plane[from[at + o]] += g[at + o];
      }
      channel_backward<true>(x, unpooled, l.s, w, l, stats, training, ch, dx, dw, db);
    }
  });
}

// Checks batch_norm's arguments (errors name the op and the shapes) and returns the input's
// [N, C, S] layout.
Layout checked_layout(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                      const Tensor& weight, const Tensor& bias, bool training, double momentum,
                      double eps) {
  detail::require_defined("batch_norm", input);
  detail::require_floating("batch_norm", input);
  if (input.dim() < 2)
    throw Error(fmt::format("batch_norm: input {} has no channel axis (expected [N, C, ...])",
                            shape_str(input.shape())));
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
    throw Error(
        fmt::format("batch_norm: need eps > 0 and momentum in [0, 1], got eps={} "
                    "momentum={}",
                    eps, momentum));
  const Layout l{input.size(0), input.size(1),
                 input.numel() / std::max<std::int64_t>(1, input.size(0) * input.size(1))};
  for (const auto& [t, what] : {std::pair{&running_mean, "running_mean"},
                                {&running_var, "running_var"},
                                {&weight, "weight"},
                                {&bias, "bias"}})
    detail::require_per_feature("batch_norm", input, detail::FeatureAxis::Channels, *t, what);
  if (!training && (!running_mean.defined() || !running_var.defined()))
    throw Error("batch_norm: evaluation needs running_mean and running_var");
  if (training && l.count() < 2)
    throw Error(
        fmt::format("batch_norm: training needs more than one value per channel, input {} "
                    "has {}",
                    shape_str(input.shape()), l.count()));
  return l;
}

}  // namespace

namespace {

// The gradients a batch-norm backward writes, each only where asked: dx like x, dw and db one
// per channel.
std::tuple<Tensor, Tensor, Tensor> batch_norm_gradients(const Tensor& x, std::int64_t channels,
                                                        const std::vector<bool>& needs) {
  return {needs[0] ? Tensor::empty(x.shape(), x.dtype()) : Tensor(),
          needs[1] ? Tensor::empty({channels}, x.dtype()) : Tensor(),
          needs[2] ? Tensor::empty({channels}, x.dtype()) : Tensor()};
}

Tensor batch_norm_maybe_relu(const Tensor& input, const Tensor& running_mean,
                             const Tensor& running_var, const Tensor& weight, const Tensor& bias,
                             bool training, double momentum, double eps, bool relu) {
  const Layout l =
      checked_layout(input, running_mean, running_var, weight, bias, training, momentum, eps);
  auto stats = std::make_shared<Statistics>(l.c);
  Tensor out = Tensor::empty(input.shape(), input.dtype());
  detail::dispatch_floating(input.dtype(), "batch_norm", [&](auto tag) {
    using T = decltype(tag);
    const auto args =
        batch_norm_args<T>(running_mean, running_var, weight, bias, training, momentum, eps, relu);
    batch_norm_forward_channels(input.data<T>(), l, args, out.data<T>(), *stats);
  });
  if (!should_record({&input, &weight, &bias})) return out;
  auto backward = [l, stats, training, relu, x = input.detach(),
                   w = weight.defined() ? weight.detach() : Tensor()](
                      const Tensor& g, const std::vector<bool>& needs) {
    Tensor dx, dw, db;
    std::tie(dx, dw, db) = batch_norm_gradients(x, l.c, needs);
    detail::dispatch_floating(x.dtype(), "batch_norm", [&](auto tag) {
      using T = decltype(tag);
      const auto channels =
          relu ? batch_norm_backward_channels<true, T> : batch_norm_backward_channels<false, T>;
      channels(x.data<T>(), g.data<T>(), detail::data_or_null<T>(w), l, *stats, training,
               detail::data_or_null<T>(dx), detail::data_or_null<T>(dw),
               detail::data_or_null<T>(db));
    });
    return std::vector<Tensor>{dx, dw, db};
  };
  return record(relu ? Op::BatchNormRelu : Op::BatchNorm, out, {input, weight, bias},
                std::move(backward));
}

}  // namespace

Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum,
                  double eps) {
  return batch_norm_maybe_relu(input, running_mean, running_var, weight, bias, training, momentum,
                               eps, false);
}

Tensor batch_norm_relu(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training, double momentum,
                       double eps) {
  return batch_norm_maybe_relu(input, running_mean, running_var, weight, bias, training, momentum,
                               eps, true);
}

Tensor batch_norm_relu_max_pool2d(const Tensor& input, const Tensor& running_mean,
                                  const Tensor& running_var, const Tensor& weight,
                                  const Tensor& bias, bool training, double momentum, double eps) {
  const Layout l =
      checked_layout(input, running_mean, running_var, weight, bias, training, momentum, eps);
  if (input.dim() != 4)
    throw Error(fmt::format("batch_norm_relu_max_pool2d: input {} is not [N,C,H,W]",
                            shape_str(input.shape())));
  const std::int64_t h = input.size(2), w = input.size(3);
  if (h < 2 || w < 2)
    throw Error(fmt::format("batch_norm_relu_max_pool2d: input {} is smaller than the 2x2 window",
                            shape_str(input.shape())));
  auto stats = std::make_shared<Statistics>(l.c);
  Tensor out = Tensor::empty({l.n, l.c, h / 2, w / 2}, input.dtype());
  const bool recorded = should_record({&input, &weight, &bias});
  // Where each maximum came from, an offset in its plane, for backward.
  const Tensor argmax = recorded ? Tensor::empty(out.shape(), DType::Int64) : Tensor();
  detail::dispatch_floating(input.dtype(), "batch_norm_relu_max_pool2d", [&](auto tag) {
    using T = decltype(tag);
    const auto args =
        batch_norm_args<T>(running_mean, running_var, weight, bias, training, momentum, eps, true);
    batch_norm_relu_pool_channels(input.data<T>(), l, w, args, out.data<T>(),
                                  recorded ? Tensor(argmax).data<std::int64_t>() : nullptr, *stats);
  });
  if (!recorded) return out;
  auto backward = [l, stats, training, argmax, outputs = (h / 2) * (w / 2), x = input.detach(),
                   w = weight.defined() ? weight.detach() : Tensor()](
                      const Tensor& g, const std::vector<bool>& needs) {
    Tensor dx, dw, db;
    std::tie(dx, dw, db) = batch_norm_gradients(x, l.c, needs);
    detail::dispatch_floating(x.dtype(), "batch_norm_relu_max_pool2d", [&](auto tag) {
      using T = decltype(tag);
      batch_norm_relu_pool_backward_channels(
          x.data<T>(), g.data<T>(), argmax.data<std::int64_t>(), outputs,
          detail::data_or_null<T>(w), l, *stats, training, detail::data_or_null<T>(dx),
          detail::data_or_null<T>(dw), detail::data_or_null<T>(db));
    });
    return std::vector<Tensor>{dx, dw, db};
  };
  return record(Op::BatchNormReluMaxPool2d, out, {input, weight, bias}, std::move(backward));
}

}  // namespace lathe
