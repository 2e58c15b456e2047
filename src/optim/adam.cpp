// torch.optim.Adam (amsgrad off) and torch.optim.AdamW (PyTorch 1.13): one update loop, which
// differs only in how weight decay enters.
#include <cmath>
#include <string>

#include "lathe/optim.h"
#include "lathe/parallel.h"
#include "src/ops/kernels.h"
#include "src/optim/checks.h"

namespace lathe {
namespace {

const AdamOptions& validated(const AdamOptions& o, bool decoupled) {
  const std::string who = decoupled ? "adamw" : "adam";
  detail::require_value(o.learning_rate > 0, who, "learning rate", "positive", o.learning_rate);
  detail::require_value(o.beta1 >= 0 && o.beta1 < 1, who, "beta1", "in [0, 1)", o.beta1);
  detail::require_value(o.beta2 >= 0 && o.beta2 < 1, who, "beta2", "in [0, 1)", o.beta2);
  detail::require_value(o.epsilon >= 0, who, "epsilon", "non-negative", o.epsilon);
  detail::require_value(o.weight_decay >= 0, who, "weight decay", "non-negative", o.weight_decay);
  return o;
}

}  // namespace

Adam::Adam(std::vector<NamedTensor> parameters, const AdamOptions& options, bool decoupled)
    : Optimizer(std::move(parameters), validated(options, decoupled).learning_rate),
      options_(options),
      decoupled_(decoupled) {
  // Created up front so that state() is complete and load_state can check a fresh optimizer.
  for (std::size_t i = 0; i < parameters_.size(); ++i) {
    buffer("exp_avg", i);
    buffer("exp_avg_sq", i);
  }
}

void Adam::step() {
  const auto t = static_cast<double>(++steps_);
  const double b1 = options_.beta1, b2 = options_.beta2;
  const double step_size = learning_rate_ / (1 - std::pow(b1, t));
  const double bc2_sqrt = std::sqrt(1 - std::pow(b2, t));
  const bool l2 = !decoupled_ && options_.weight_decay != 0;
  for (std::size_t index = 0; index < parameters_.size(); ++index) {
    Tensor& parameter = parameters_[index].tensor;
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor& exp_avg = buffer("exp_avg", index);
    Tensor& exp_avg_sq = buffer("exp_avg_sq", index);
    detail::dispatch_floating(parameter.dtype(), name().c_str(), [&](auto tag) {
      using T = decltype(tag);
      T* p = parameter.data<T>();
      const T* g = grad.data<T>();
      T* m = exp_avg.data<T>();
      T* v = exp_avg_sq.data<T>();
      const auto beta1 = static_cast<T>(b1), beta2 = static_cast<T>(b2),
                 one_minus_b1 = static_cast<T>(1 - b1), one_minus_b2 = static_cast<T>(1 - b2),
                 wd = static_cast<T>(options_.weight_decay),
                 shrink = static_cast<T>(1 - learning_rate_ * options_.weight_decay),
                 eps = static_cast<T>(options_.epsilon), bc2 = static_cast<T>(bc2_sqrt),
                 neg_step = static_cast<T>(-step_size);
      const bool decoupled = decoupled_;
      parallel_for(parameter.numel(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
        for (std::int64_t i = b; i < e; ++i) {
          if (decoupled) p[i] *= shrink;
          const T d = l2 ? g[i] + wd * p[i] : g[i];
          m[i] = m[i] * beta1 + one_minus_b1 * d;
          v[i] = v[i] * beta2 + one_minus_b2 * d * d;
          p[i] += neg_step * m[i] / (std::sqrt(v[i]) / bc2 + eps);
        }
      });
    });
  }
}

}  // namespace lathe
