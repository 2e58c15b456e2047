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

void require_row_vector(const Tensor& t, std::int64_t width, const char* what,
                        const Tensor& input) {
  if (!t.defined()) return;
  detail::require_same_dtype("layer_norm", input, t);
  if (t.shape() != Shape{width})
    throw Error(fmt::format("layer_norm: {} {} does not match the last axis ({}) of input {}", what,
                            shape_str(t.shape()), width, shape_str(input.shape())));
}

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

}  // namespace

Tensor layer_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps) {
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
  require_row_vector(weight, width, "weight", input);
  require_row_vector(bias, width, "bias", input);
  const std::int64_t rows = input.numel() / width;

  Tensor out = Tensor::empty(input.shape(), input.dtype());
  // Per row: mean and 1/std, in the input's type (float32 rows of a few hundred values keep
  // full precision through the double accumulators below).
  Tensor stats = Tensor::empty({rows, 2}, input.dtype());
  detail::dispatch_floating(input.dtype(), "layer_norm", [&](auto tag) {
    using T = decltype(tag);
    const T* x = input.data<T>();
    const T* w = weight.defined() ? weight.data<T>() : nullptr;
    const T* b = bias.defined() ? bias.data<T>() : nullptr;
    T* y = out.data<T>();
    T* st = stats.data<T>();
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
        st[2 * r] = mean;
        st[2 * r + 1] = inverse_std;
        for (std::int64_t j = 0; j < width; ++j) {
          T v = (xr[j] - mean) * inverse_std;
          if (w) v *= w[j];
          if (b) v += b[j];
          yr[j] = v;
        }
      }
    });
  });
  if (!should_record({&input, &weight, &bias})) return out;

  std::vector<Tensor> inputs{input};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  const bool has_weight = weight.defined(), has_bias = bias.defined();
  return record(
      Op::LayerNorm, out, inputs,
      [x_saved = input.detach(), w_saved = weight.defined() ? weight.detach() : Tensor(), stats,
       has_weight, has_bias, rows, width](const Tensor& g, const std::vector<bool>& needs) {
        std::vector<Tensor> grads(needs.size());
        const bool want_input = needs[0];
        const bool want_weight = has_weight && needs[1];
        const bool want_bias = has_bias && needs[has_weight ? 2 : 1];
        Tensor dx = want_input ? Tensor::empty(x_saved.shape(), g.dtype()) : Tensor();
        Tensor dw = want_weight ? Tensor::zeros({width}, g.dtype()) : Tensor();
        Tensor db = want_bias ? Tensor::zeros({width}, g.dtype()) : Tensor();
        detail::dispatch_floating(g.dtype(), "layer_norm backward", [&](auto tag) {
          using T = decltype(tag);
          const T* x = x_saved.data<T>();
          const T* dy = g.data<T>();
          const T* w = has_weight ? w_saved.data<T>() : nullptr;
          const T* st = stats.data<T>();
          if (want_input) {
            T* dxp = dx.data<T>();
            parallel_for(rows, row_grain(width), [&](std::int64_t begin, std::int64_t end) {
              for (std::int64_t r = begin; r < end; ++r) {
                const T* xr = x + r * width;
                const T* dyr = dy + r * width;
                const T mean = st[2 * r], inverse_std = st[2 * r + 1];
                // dxhat = dy * w; dx = inverse_std * (dxhat - mean(dxhat) - xhat *
                // mean(dxhat * xhat)).
                const auto dxhat_at = [dyr, w](std::int64_t j) {
                  return w ? dyr[j] * w[j] : dyr[j];
                };
                const double sum_dxhat = lane_sum<T>(width, dxhat_at);
                const double sum_dxhat_xhat = lane_sum<T>(width, [&](std::int64_t j) {
                  return dxhat_at(j) * (xr[j] - mean) * inverse_std;
                });
                const T mean_dxhat = static_cast<T>(sum_dxhat / static_cast<double>(width));
                const T mean_dxhat_xhat =
                    static_cast<T>(sum_dxhat_xhat / static_cast<double>(width));
                T* dxr = dxp + r * width;
                for (std::int64_t j = 0; j < width; ++j) {
                  const T dxhat = w ? dyr[j] * w[j] : dyr[j];
                  const T xhat = (xr[j] - mean) * inverse_std;
                  dxr[j] = inverse_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat);
                }
              }
            });
          }
          // Column sums over rows: serial, a few hundred thousand multiply-adds at most here.
          if (want_weight || want_bias) {
            T* dwp = want_weight ? dw.data<T>() : nullptr;
            T* dbp = want_bias ? db.data<T>() : nullptr;
            for (std::int64_t r = 0; r < rows; ++r) {
              const T* xr = x + r * width;
              const T* dyr = dy + r * width;
              const T mean = st[2 * r], inverse_std = st[2 * r + 1];
              if (dwp)
                for (std::int64_t j = 0; j < width; ++j)
                  dwp[j] += dyr[j] * (xr[j] - mean) * inverse_std;
              if (dbp)
                for (std::int64_t j = 0; j < width; ++j) dbp[j] += dyr[j];
            }
          }
        });
        grads[0] = dx;
        if (has_weight) grads[1] = dw;
        if (has_bias) grads[has_weight ? 2 : 1] = db;
        return grads;
      });
}

}  // namespace lathe
