// The Optimizer base: parameter checks, learning rate, and the named state buffers with their
// save and restore.
#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "lathe/error.h"
#include "lathe/optim.h"
#include "src/optim/checks.h"

namespace lathe {

Optimizer::Optimizer(std::vector<NamedTensor> parameters, double learning_rate)
    : parameters_(std::move(parameters)), learning_rate_(learning_rate) {
  detail::require_value(learning_rate > 0, "optimizer", "learning rate", "positive", learning_rate);
  if (parameters_.empty()) throw Error("optimizer: the parameter list is empty");
  std::set<std::string> names;
  std::map<const void*, std::string> storages;
  for (const auto& [name, tensor] : parameters_) {
    if (name.empty()) throw Error("optimizer: a parameter has an empty name");
    if (!names.insert(name).second)
      throw Error(fmt::format("optimizer: duplicate parameter name '{}'", name));
    if (!tensor.defined())
      throw Error(fmt::format("optimizer: parameter '{}' is an undefined tensor", name));
    if (!is_floating(tensor.dtype()))
      throw Error(fmt::format("optimizer: parameter '{}' has dtype {}; expected float32 or float64",
                              name, dtype_name(tensor.dtype())));
    // Two parameters on one storage (a tensor and its reshape) would be updated twice per step.
    const auto [it, inserted] = storages.emplace(tensor.impl()->storage.get(), name);
    if (!inserted)
      throw Error(
          fmt::format("optimizer: parameters '{}' and '{}' share storage", it->second, name));
  }
}

void Optimizer::zero_grad() {
  for (auto& parameter : parameters_) parameter.tensor.zero_grad();
}

void Optimizer::exempt_from_weight_decay(const std::function<bool(const NamedTensor&)>& exempt) {
  decays_.assign(parameters_.size(), true);
  for (std::size_t i = 0; i < parameters_.size(); ++i) decays_[i] = !exempt(parameters_[i]);
}

// Zero is allowed here (unlike in the constructors) because warmup schedules start at 0.
void Optimizer::set_learning_rate(double learning_rate) {
  detail::require_value(learning_rate >= 0, name(), "learning rate", "non-negative", learning_rate);
  learning_rate_ = learning_rate;
}

Tensor& Optimizer::buffer(const std::string& buffer, std::size_t index) {
  const NamedTensor& parameter = parameters_.at(index);
  Tensor& slot = buffers_[buffer + "." + parameter.name];
  if (!slot.defined()) slot = Tensor::zeros(parameter.tensor.shape(), parameter.tensor.dtype());
  return slot;
}

// Copies, so a saved state does not change as the optimizer keeps stepping.
std::map<std::string, Tensor> Optimizer::state() const {
  std::map<std::string, Tensor> state;
  for (const auto& [key, value] : buffers_) state.emplace(key, value.clone());
  state.emplace("step", Tensor::scalar(static_cast<double>(steps_), DType::Float64));
  return state;
}

// Checks everything before changing anything, so a failed load leaves the optimizer as it was.
// Buffer keys are "<buffer>.<parameter name>" and buffer names contain no '.'.
void Optimizer::load_state(const std::map<std::string, Tensor>& state) {
  const auto entry = [&](const std::string& key) -> const Tensor& {
    const auto it = state.find(key);
    if (it == state.end() || !it->second.defined())
      throw Error(fmt::format("optimizer load_state: missing entry '{}'", key));
    return it->second;
  };
  for (const auto& [key, value] : buffers_) {
    const Tensor& saved = entry(key);
    if (saved.shape() != value.shape())
      throw Error(fmt::format(
          "optimizer load_state: entry '{}' shape {} does not match parameter {} {}", key,
          shape_str(saved.shape()), key.substr(key.find('.') + 1), shape_str(value.shape())));
    if (!is_floating(saved.dtype()))
      throw Error(
          fmt::format("optimizer load_state: entry '{}' has dtype {}; expected float32 or float64",
                      key, dtype_name(saved.dtype())));
  }
  const Tensor& step = entry("step");
  if (step.numel() != 1)
    throw Error(fmt::format("optimizer load_state: entry 'step' has shape {}; expected one value",
                            shape_str(step.shape())));
  const double steps = step.item();
  if (!(steps >= 0 && steps <= 9007199254740992.0 && std::floor(steps) == steps))
    throw Error(fmt::format(
        "optimizer load_state: entry 'step' must be a non-negative integer, got {}", steps));
  for (const auto& [key, value] : state)
    if (key != "step" && !buffers_.contains(key))
      throw Error(
          fmt::format("optimizer load_state: unexpected entry '{}' for {} with these "
                      "options and parameters",
                      key, name()));

  for (auto& [key, value] : buffers_) value.copy_(state.at(key));
  steps_ = static_cast<std::int64_t>(steps);
}

}  // namespace lathe
