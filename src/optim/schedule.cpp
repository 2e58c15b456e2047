// Learning-rate schedules: StepLR and linear warmup followed by cosine decay.
#include <fmt/format.h>

#include <cmath>
#include <numbers>

#include "lathe/optim.h"
#include "src/optim/checks.h"

namespace lathe {
namespace {

void require_step(const char* schedule, std::int64_t step) {
  if (step < 0) throw Error(fmt::format("{}: step must be non-negative, got {}", schedule, step));
}

}  // namespace

StepLR::StepLR(double base, std::int64_t step_size, double gamma)
    : base_(base), step_size_(step_size), gamma_(gamma) {
  detail::require_value(base > 0, "StepLR", "base learning rate", "positive", base);
  if (step_size <= 0)
    throw Error(fmt::format("StepLR: step_size must be positive, got {}", step_size));
  detail::require_value(gamma > 0, "StepLR", "gamma", "positive", gamma);
}

double StepLR::learning_rate(std::int64_t step) const {
  require_step("StepLR", step);
  return base_ * std::pow(gamma_, static_cast<double>(step / step_size_));
}

CosineWarmupLR::CosineWarmupLR(double base, std::int64_t warmup_steps, std::int64_t total_steps,
                               double min_lr)
    : base_(base), warmup_steps_(warmup_steps), total_steps_(total_steps), min_lr_(min_lr) {
  detail::require_value(base > 0, "CosineWarmupLR", "base learning rate", "positive", base);
  if (total_steps <= 0)
    throw Error(fmt::format("CosineWarmupLR: total_steps must be positive, got {}", total_steps));
  if (warmup_steps < 0 || warmup_steps > total_steps)
    throw Error(fmt::format("CosineWarmupLR: warmup_steps must be in [0, total_steps {}], got {}",
                            total_steps, warmup_steps));
  detail::require_value(min_lr >= 0 && min_lr <= base, "CosineWarmupLR", "min_lr",
                        fmt::format("in [0, base {}]", base), min_lr);
}

double CosineWarmupLR::learning_rate(std::int64_t step) const {
  require_step("CosineWarmupLR", step);
  if (step < warmup_steps_)
    return base_ * static_cast<double>(step + 1) / static_cast<double>(warmup_steps_ + 1);
  if (step >= total_steps_) return min_lr_;
  const double progress =
      static_cast<double>(step - warmup_steps_) / static_cast<double>(total_steps_ - warmup_steps_);
  return min_lr_ + (base_ - min_lr_) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
}

}  // namespace lathe
