// torch.optim.SGD (PyTorch 1.13): L2 weight decay, momentum with dampening, Nesterov.
#include <fmt/format.h>

#include "lathe/optim.h"
#include "lathe/parallel.h"
#include "src/optim/checks.h"
#include "src/optim/flush_denormals.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

const SGDOptions& validated_sgd(const SGDOptions& o) {
  detail::require_value(o.learning_rate > 0, "sgd", "learning rate", "positive", o.learning_rate);
  detail::require_value(o.momentum >= 0, "sgd", "momentum", "non-negative", o.momentum);
  detail::require_value(o.dampening >= 0 && o.dampening <= 1, "sgd", "dampening", "in [0, 1]",
                        o.dampening);
  detail::require_value(o.weight_decay >= 0, "sgd", "weight decay", "non-negative", o.weight_decay);
  if (o.nesterov && (o.momentum <= 0 || o.dampening != 0))
    throw Error(fmt::format(
        "sgd: nesterov needs momentum > 0 and dampening 0, got momentum {} and dampening {}",
        o.momentum, o.dampening));
  return o;
}

}  // namespace

SGD::SGD(std::vector<NamedTensor> parameters, const SGDOptions& options)
    : Optimizer(std::move(parameters), validated_sgd(options).learning_rate), options_(options) {
  // Created up front so that state() is complete and load_state can check a fresh optimizer.
  if (options_.momentum != 0)
    for (std::size_t i = 0; i < parameters_.size(); ++i) buffer("momentum_buffer", i);
}

void SGD::step() {
  // PyTorch starts the momentum buffer at the first gradient (buf = g) rather than from zero.
  // The step counter is shared by all parameters, so "first" means the optimizer's first step.
  const bool first = steps_ == 0;
  ++steps_;
  const bool momentum = options_.momentum != 0;
  for (std::size_t index = 0; index < parameters_.size(); ++index) {
    const bool decay = options_.weight_decay != 0 && decays(index);
    Tensor& parameter = parameters_[index].tensor;
    const Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    Tensor* buf = momentum ? &buffer("momentum_buffer", index) : nullptr;
    detail::dispatch_floating(parameter.dtype(), "sgd", [&](auto tag) {
      using T = decltype(tag);
      T* p = parameter.data<T>();
      const T* g = grad.data<T>();
      T* m = buf ? buf->data<T>() : nullptr;
      const auto lr = static_cast<T>(learning_rate_), wd = static_cast<T>(options_.weight_decay),
                 mu = static_cast<T>(options_.momentum),
                 keep = static_cast<T>(1 - options_.dampening);
      const bool nesterov = options_.nesterov;
      parallel_for(parameter.numel(), detail::kParallelGrain, [&](std::int64_t b, std::int64_t e) {
        const detail::FlushDenormals no_subnormal_assists;
        for (std::int64_t i = b; i < e; ++i) {
          T d = decay ? g[i] + wd * p[i] : g[i];
          if (m) {
            m[i] = first ? d : m[i] * mu + keep * d;
            d = nesterov ? d + mu * m[i] : m[i];
          }
          p[i] -= lr * d;
        }
      });
    });
  }
}

}  // namespace lathe
