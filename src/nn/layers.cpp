// The basic layers: Linear, Flatten, Dropout, activations, Sequential.
#include <fmt/format.h>

#include <cmath>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/ops.h"
#include "src/tensor/dispatch.h"

namespace lathe {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator,
               DType dtype, std::optional<WeightLayout> layout)
    : in_features_(in_features),
      out_features_(out_features),
      layout_(layout.value_or(in_features >= 2 * out_features ? WeightLayout::InOut
                                                              : WeightLayout::OutIn)) {
  if (in_features <= 0 || out_features <= 0)
    throw Error(fmt::format("linear: features must be positive, got in={} out={}", in_features,
                            out_features));
  // PyTorch's default: kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(in), 1/sqrt(in)), and the
  // bias uses the same bound. Drawn in [out, in] order whatever the layout, so that a seed gives
  // the same layer either way.
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  Tensor weight = Tensor::empty({out_features, in_features}, dtype);
  uniform_(weight, -bound, bound, generator);
  if (layout_ == WeightLayout::InOut) weight = transpose(weight, 0, 1);
  weight_ = register_parameter("weight", weight);
  if (bias) {
    Tensor b = Tensor::empty({out_features}, dtype);
    uniform_(b, -bound, bound, generator);
    bias_ = register_parameter("bias", b);
  }
}

Tensor Linear::forward(const Tensor& input) {
  if (input.dim() < 1 || input.size(-1) != in_features_)
    throw Error(fmt::format("linear({}->{}): input of shape {} does not end in {} features",
                            in_features_, out_features_, shape_str(input.shape()), in_features_));
  if (input.dtype() != weight_.dtype())
    throw Error(fmt::format("linear({}->{}): input is {}, weights are {}", in_features_,
                            out_features_, dtype_name(input.dtype()), dtype_name(weight_.dtype())));
  const Tensor flat = input.dim() == 2 ? input : reshape(input, {-1, in_features_});
  const Tensor out = lathe::linear(flat, weight_, bias_, layout_);
  if (input.dim() == 2) return out;
  Shape shape = input.shape();
  shape.back() = out_features_;
  return reshape(out, shape);
}

Tensor Linear::saved_form(const std::string& name, const Tensor& stored) const {
  if (name != "weight" || layout_ == WeightLayout::OutIn) return stored;
  NoGradGuard no_grad;
  return transpose(stored, 0, 1);
}

void Linear::load_saved_form(const std::string& name, const Tensor& saved, Tensor& stored) const {
  if (name != "weight" || layout_ == WeightLayout::OutIn) return stored.copy_(saved);
  NoGradGuard no_grad;
  stored.copy_(transpose(saved, 0, 1));
}

nlohmann::json Linear::spec() const {
  return {
      {"type", type()}, {"in", in_features_}, {"out", out_features_}, {"bias", bias_.defined()}};
}

Tensor Flatten::forward(const Tensor& input) {
  if (input.dim() < 1)
    throw Error(
        fmt::format("flatten: input of shape {} has no batch axis", shape_str(input.shape())));
  std::int64_t features = 1;  // counted, not inferred, so that an empty batch keeps its width
  for (std::int64_t axis = 1; axis < input.dim(); ++axis) features *= input.size(axis);
  return reshape(input, {input.size(0), features});
}

Dropout::Dropout(double p) : p_(p) {
  if (!(p >= 0 && p < 1)) throw Error(fmt::format("dropout: p must be in [0, 1), got {}", p));
}

Tensor Dropout::forward(const Tensor& input) {
  if (!is_training() || p_ == 0) return input;
  Tensor mask = Tensor::empty(input.shape(), input.dtype());
  Generator& generator = default_generator();
  const double keep_scale = 1.0 / (1.0 - p_);
  detail::dispatch_floating(input.dtype(), "dropout", [&](auto tag) {
    using T = decltype(tag);
    T* m = mask.data<T>();
    for (std::int64_t i = 0; i < mask.numel(); ++i)
      m[i] = static_cast<T>(generator.uniform() < p_ ? 0.0 : keep_scale);
  });
  return input * mask;
}

nlohmann::json Dropout::spec() const {
  return {{"type", type()}, {"p", p_}};
}

Activation::Activation(std::string type, std::function<Tensor(const Tensor&)> function,
                       nlohmann::json spec)
    : type_(std::move(type)), function_(std::move(function)), spec_(std::move(spec)) {}

nlohmann::json Activation::spec() const {
  nlohmann::json out = spec_;
  out["type"] = type_;
  return out;
}

Sequential::Sequential(std::vector<std::shared_ptr<Module>> layers) {
  for (auto& layer : layers) append(std::move(layer));
}

void Sequential::append(std::shared_ptr<Module> layer) {
  register_module(std::to_string(children().size()), std::move(layer));
}

Tensor Sequential::forward(const Tensor& input) {
  const auto& layers = children();
  const auto is_relu = [&](std::size_t i) {
    return i < layers.size() && dynamic_cast<const Activation*>(layers[i].second.get()) &&
           layers[i].second->type() == "relu";
  };
  const auto is_max_pool_2x2 = [&](std::size_t i) {
    const auto* pool =
        i < layers.size() ? dynamic_cast<const Pool2d*>(layers[i].second.get()) : nullptr;
    return pool && pool->max_2x2();
  };
  Tensor x = input;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    auto* norm = dynamic_cast<BatchNorm*>(layers[i].second.get());
    if (norm && is_relu(i + 1) && norm->type() == "batch_norm2d" && is_max_pool_2x2(i + 2)) {
      x = norm->forward_relu_max_pool(x);
      i += 2;
    } else if (norm && is_relu(i + 1)) {
      x = norm->forward_then_relu(x);
      ++i;
    } else {
      x = layers[i].second->forward(x);
    }
  }
  return x;
}

nlohmann::json Sequential::spec() const {
  nlohmann::json layers = nlohmann::json::array();
  for (const auto& [name, layer] : children()) layers.push_back(layer->spec());
  return {{"type", type()}, {"layers", layers}};
}

}  // namespace lathe
