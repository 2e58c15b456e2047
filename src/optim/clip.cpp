// clip_grad_norm: torch.nn.utils.clip_grad_norm_ with the L2 norm (PyTorch 1.13).
#include <algorithm>
#include <cmath>

#include "lathe/optim.h"
#include "lathe/parallel.h"
#include "src/optim/checks.h"
#include "src/tensor/dispatch.h"

namespace lathe {

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  detail::require_value(max_norm >= 0, "clip_grad_norm", "max_norm", "non-negative", max_norm);
  std::vector<Tensor> grads;
  for (const Tensor& parameter : parameters)
    if (Tensor grad = parameter.grad(); grad.defined()) grads.push_back(std::move(grad));

  // On the calling thread, so the norm does not depend on the thread count; eight independent
  // double sums (added in a fixed order) let the compiler vectorize the squares.
  double lanes[8] = {};
  for (const Tensor& grad : grads)
    detail::dispatch_floating(grad.dtype(), "clip_grad_norm", [&](auto tag) {
      using T = decltype(tag);
      const T* g = grad.data<T>();
      const std::int64_t n = grad.numel();
      std::int64_t i = 0;
      for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k)
          lanes[k] += static_cast<double>(g[i + k]) * static_cast<double>(g[i + k]);
      for (; i < n; ++i) lanes[0] += static_cast<double>(g[i]) * static_cast<double>(g[i]);
    });
  double sum = 0;
  for (double lane : lanes) sum += lane;
  const double norm = std::sqrt(sum);

  // As PyTorch: the coefficient is clamped to 1, so norms within 1e-6 below max_norm are scaled
  // (very slightly) too, and a non-finite norm makes the gradients non-finite.
  const double scale = std::min(max_norm / (norm + 1e-6), 1.0);
  if (scale == 1.0) return norm;
  for (Tensor& grad : grads)
    detail::dispatch_floating(grad.dtype(), "clip_grad_norm", [&](auto tag) {
      using T = decltype(tag);
      T* g = grad.data<T>();
      const auto s = static_cast<T>(scale);
      parallel_for(grad.numel(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) g[i] *= s;
      });
    });
  return norm;
}

}  // namespace lathe
