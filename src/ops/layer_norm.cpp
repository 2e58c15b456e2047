// Layer normalization over the last axis (PyTorch's F.layer_norm with normalized_shape = [C]):
// each row is centred and scaled by 1/sqrt(biased variance + eps), then weight and bias apply.
// One fused pass each way; the rows' mean and 1/std are kept for backward.
#include <fmt/format.h>

#include <cmath>
#include <vector>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/ops/kernels.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

// Rows per parallel chunk: enough values that a thread hand-off pays for itself.
std::int64_t row_grain(std::int64_t width) {
  return std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(1, width));
}

// The sum of f(j) for j in [0, n): eight partial sums in T so the compiler vectorizes, added
// in double at the end (rows are at most a few thousand values).
template <class T, class F>
double lane_sum(std::int64_t n, F f) {
  T acc[8] = {};
  std::int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(j + k);
  double sum = 0;
  for (int k = 0; k < 8; ++k) sum += acc[k];
  for (; j < n; ++j) sum += f(j);
  return sum;
}

// y = (x - mean) * inverse_std * w + b row by row, rows split over the pool (w, b may be null).
// Each row's mean and inverse_std go to stats[2r], stats[2r + 1] for backward, in T: float32
// rows of a few hundred values keep full precision through the double accumulators.
template <class T>
void layer_norm_forward_rows(const T* x, const T* w, const T* b, double eps, std::int64_t rows,
                             std::int64_t width, T* y, T* stats) {
  parallel_for(rows, row_grain(width), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * width;
      T* yr = y + r * width;
      const double sum = lane_sum<T>(width, [xr](std::int64_t j) { return xr[j]; });
      const T mean = static_cast<T>(sum / static_cast<double>(width));
      const double squares = lane_sum<T>(width, [xr, mean](std::int64_t j) {
        const T d = xr[j] - mean;
        return d * d;
      });
      const T inverse_std =
          static_cast<T>(1.0 / std::sqrt(squares / static_cast<double>(width) + eps));
      stats[2 * r] = mean;
      stats[2 * r + 1] = inverse_std;
      for (std::int64_t j = 0; j < width; ++j) {
        T v = (xr[j] - mean) * inverse_std;
        if (w) v *= w[j];
        if (b) v += b[j];
        yr[j] = v;
      }
    }
  });
}

// The input gradient row by row, rows split over the pool: with dxhat = dy * w and xhat =
// (x - mean) * inverse_std, dx = inverse_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
template <class T>
void layer_norm_backward_rows(const T* x, const T* dy, const T* w, const T* stats,
                              std::int64_t rows, std::int64_t width, T* dx) {
  parallel_for(rows, row_grain(width), [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t r = begin; r < end; ++r) {
      const T* xr = x + r * width;
      const T* dyr = dy + r * width;
      const T mean = stats[2 * r], inverse_std = stats[2 * r + 1];
      const auto dxhat_at = [dyr, w](std::int64_t j) { return w ? dyr[j] * w[j] : dyr[j]; };
      const double sum_dxhat = lane_sum<T>(width, dxhat_at);
      const double sum_dxhat_xhat = lane_sum<T>(
          width, [&](std::int64_t j) { return dxhat_at(j) * (xr[j] - mean) * inverse_std; });
      const T mean_dxhat = static_cast<T>(sum_dxhat / static_cast<double>(width));
      const T mean_dxhat_xhat = static_cast<T>(sum_dxhat_xhat / static_cast<double>(width));
      T* dxr = dx + r * width;
      for (std::int64_t j = 0; j < width; ++j) {
        const T dxhat = w ? dyr[j] * w[j] : dyr[j];
        const T xhat = (xr[j] - mean) * inverse_std;
        dxr[j] = inverse_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
      }
    }
  });
}

// The weight gradient sum over rows of dy * xhat into dw and the bias gradient sum of dy into db
// (either may be null; both start at zero). Serial: a few hundred thousand multiply-adds at most.
template <class T>
void layer_norm_backward_columns(const T* x, const T* dy, const T* stats, std::int64_t rows,
                                 std::int64_t width, T* dw, T* db) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * width;
    const T* dyr = dy + r * width;
    const T mean = stats[2 * r], inverse_std = stats[2 * r + 1];
    if (dw)
      for (std::int64_t j = 0; j < width; ++j) dw[j] += dyr[j] * (xr[j] - mean) * inverse_std;
    if (db)
      for (std::int64_t j = 0; j < width; ++j) db[j] += dyr[j];
  }
}

// Checks layer_norm's arguments (errors name the op and the shapes) and returns the width of
// the normalized rows.
std::int64_t checked_width(const Tensor& input, const Tensor& weight, const Tensor& bias,
                           double eps) {
  detail::require_floating("layer_norm", input);
  if (input.dim() < 1)
    throw Error(
        fmt::format("layer_norm: input {} has no axis to normalize", shape_str(input.shape())));
  if (!(eps > 0) || !std::isfinite(eps))
    throw Error(fmt::format("layer_norm: eps must be a positive number, got {}", eps));
  const std::int64_t width = input.shape().back();
  if (width < 1)
    throw Error(
        fmt::format("layer_norm: the last axis of input {} is empty", shape_str(input.shape())));
  detail::require_per_feature("layer_norm", input, detail::FeatureAxis::Last, weight, "weight");
  detail::require_per_feature("layer_norm", input, detail::FeatureAxis::Last, bias, "bias");
  return width;
}

}  // namespace

Tensor layer_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps) {
  const std::int64_t width = checked_width(input, weight, bias, eps);
  const std::int64_t rows = input.numel() / width;

  Tensor out = Tensor::empty(input.shape(), input.dtype());
  Tensor stats = Tensor::empty({rows, 2}, input.dtype());  // per row: mean, 1/std
  detail::dispatch_floating(input.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    layer_norm_forward_rows(input.data<T>(), detail::data_or_null<T>(weight),
                            detail::data_or_null<T>(bias), eps, rows, width, out.data<T>(),
                            stats.data<T>());
  });
  if (!should_record({&input, &weight, &bias})) return out;
  return record(Op::LayerNorm, out, {input, weight, bias},
                [x = input.detach(), w = weight.defined() ? weight.detach() : Tensor(), stats, rows,
                 width](const Tensor& g, const std::vector<bool>& needs) {
                  Tensor dx = needs[0] ? Tensor::empty(x.shape(), g.dtype()) : Tensor();
                  Tensor dw = needs[1] ? Tensor::zeros({width}, g.dtype()) : Tensor();
                  Tensor db = needs[2] ? Tensor::zeros({width}, g.dtype()) : Tensor();
                  detail::dispatch_floating(g.dtype(), "layer_norm backward", [&](auto tag) {
                    using T = decltype(tag);
                    if (dx.defined())
                      layer_norm_backward_rows(x.data<T>(), g.data<T>(), detail::data_or_null<T>(w),
                                               stats.data<T>(), rows, width, dx.data<T>());
                    if (dw.defined() || db.defined())
                      layer_norm_backward_columns(x.data<T>(), g.data<T>(), stats.data<T>(), rows,
                                                  width, detail::data_or_null<T>(dw),
                                                  detail::data_or_null<T>(db));
                  });
                  return std::vector<Tensor>{dx, dw, db};
                });
}

}  // namespace lathe
