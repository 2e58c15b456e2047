// Module bookkeeping: registration, recursive naming, state_dict, train/eval.
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/nn.h"

namespace lathe {

nlohmann::json Module::spec() const {
  return {{"type", type()}};
}

Tensor Module::register_parameter(const std::string& name, Tensor value) {
  value.requires_grad_();
  parameters_.push_back({name, value});
  return value;
}

Tensor Module::register_buffer(const std::string& name, Tensor value) {
  buffers_.push_back({name, value});
  return value;
}

void Module::register_module(const std::string& name, std::shared_ptr<Module> module) {
  children_.emplace_back(name, std::move(module));
}

void Module::collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const {
  for (const auto& [name, tensor] : buffers ? buffers_ : parameters_)
    out.push_back({prefix + name, tensor});
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", buffers, out);
}

std::vector<NamedTensor> Module::named_parameters() const {
  std::vector<NamedTensor> out;
  collect("", false, out);
  return out;
}

std::vector<NamedTensor> Module::named_buffers() const {
  std::vector<NamedTensor> out;
  collect("", true, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

std::int64_t Module::parameter_count() const {
  std::int64_t count = 0;
  for (const Tensor& p : parameters()) count += p.numel();
  return count;
}

Tensor Module::saved_form(const std::string&, const Tensor& stored) const {
  return stored;
}

void Module::load_saved_form(const std::string&, const Tensor& saved, Tensor& stored) const {
  stored.copy_(saved);
}

void Module::collect_state(const std::string& prefix, std::map<std::string, Tensor>& out) const {
  for (const auto* own : {&parameters_, &buffers_})
    for (const auto& [name, tensor] : *own) out[prefix + name] = saved_form(name, tensor);
  for (const auto& [name, child] : children_) child->collect_state(prefix + name + ".", out);
}

void Module::load_state(const std::string& prefix,
                        const std::map<std::string, Tensor>& state) const {
  for (const auto* own : {&parameters_, &buffers_})
    for (auto [name, tensor] : *own) load_saved_form(name, state.at(prefix + name), tensor);
  for (const auto& [name, child] : children_) child->load_state(prefix + name + ".", state);
}

std::map<std::string, Tensor> Module::state_dict() const {
  std::map<std::string, Tensor> state;
  collect_state("", state);
  return state;
}

void Module::load_state_dict(const std::map<std::string, Tensor>& state) {
  const auto own = state_dict();
  for (const auto& [name, source] : state)
    if (!own.count(name))
      throw Error(
          fmt::format("load_state_dict: unexpected entry '{}' (the model has no such "
                      "parameter or buffer)",
                      name));
  for (const auto& [name, target] : own) {
    auto found = state.find(name);
    if (found == state.end())
      throw Error(fmt::format("load_state_dict: missing entry '{}' of shape {}", name,
                              shape_str(target.shape())));
    if (found->second.shape() != target.shape())
      throw Error(fmt::format("load_state_dict: '{}' has shape {} but the model expects {}", name,
                              shape_str(found->second.shape()), shape_str(target.shape())));
  }
  load_state("", state);
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (Tensor& p : parameters()) p.zero_grad();
}

}  // namespace lathe
