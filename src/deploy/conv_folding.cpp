// Folding conv2d + batch_norm2d (+ relu) for inference (see conv_folding.h).
#include "src/deploy/conv_folding.h"

#include <cmath>

#include "src/ops/frozen_conv.h"

namespace lathe::detail {
namespace {

// A convolution with a batch norm folded in: weight[o] * k[o] and (bias[o] - mean[o]) * k[o] +
// beta[o], k = gamma / sqrt(var + eps), then relu and a 2x2 max pool where they followed.
class FoldedConv2d : public Module {
 public:
  FoldedConv2d(Tensor weight, Tensor bias, Conv2dOptions options, ConvEpilogue epilogue)
      : conv_(std::move(weight), std::move(bias), options, epilogue) {}
  Tensor forward(const Tensor& input) override { return conv_.forward(input); }
  std::string type() const override { return "folded_conv2d"; }

 private:
  FrozenConv2d conv_;
};

Conv2dOptions options_of(const nlohmann::json& spec) {
  const auto pair = [&](const char* key) {
    const std::int64_t v = spec.at(key).get<std::int64_t>();
    return std::array<std::int64_t, 2>{v, v};
  };
  return {pair("stride"), pair("padding"), pair("dilation"), spec.at("groups").get<std::int64_t>()};
}

// The folded layer for `conv`, `norm` (may be null) and what follows; null where the convolution
// is not float32.
std::shared_ptr<Module> fold(const Module& conv, const Module* norm, ConvEpilogue epilogue) {
  const std::map<std::string, Tensor> conv_state = conv.state_dict();
  const Tensor& weight = conv_state.at("weight");
  if (weight.dtype() != DType::Float32) return nullptr;
  const std::int64_t out = weight.size(0), per_output = weight.numel() / out;
  const auto bias_it = conv_state.find("bias");
  std::vector<double> scale(static_cast<std::size_t>(out), 1.0), shift(scale.size(), 0.0);
  if (bias_it != conv_state.end()) shift = bias_it->second.to_vector();
  if (norm) {
    const std::map<std::string, Tensor> s = norm->state_dict();
    const double eps = norm->spec().at("eps").get<double>();
    const std::vector<double> mean = s.at("running_mean").to_vector(),
                              var = s.at("running_var").to_vector();
    const std::vector<double> gamma =
        s.count("weight") ? s.at("weight").to_vector() : std::vector<double>(scale.size(), 1.0);
    const std::vector<double> beta =
        s.count("bias") ? s.at("bias").to_vector() : std::vector<double>(scale.size(), 0.0);
    for (std::size_t o = 0; o < scale.size(); ++o) {
      scale[o] = gamma[o] / std::sqrt(var[o] + eps);
      shift[o] = (shift[o] - mean[o]) * scale[o] + beta[o];
    }
  }
  Tensor folded_weight = Tensor::empty(weight.shape());
  const float* w = weight.data<float>();
  float* fw = folded_weight.data<float>();
  for (std::int64_t o = 0; o < out; ++o)
    for (std::int64_t i = 0; i < per_output; ++i)
      fw[o * per_output + i] = static_cast<float>(w[o * per_output + i] * scale[o]);
  Tensor folded_bias = Tensor::from_vector(shift, {out});
  return std::make_shared<FoldedConv2d>(folded_weight, folded_bias, options_of(conv.spec()),
                                        epilogue);
}

bool is_type(const std::shared_ptr<Module>& layer, const char* type) {
  return layer && layer->type() == type;
}

// A max_pool2d of 2x2 windows at stride 2 without padding, which ConvEpilogue can apply.
bool is_pool_2x2(const std::shared_ptr<Module>& layer) {
  const auto* pool = dynamic_cast<const Pool2d*>(layer.get());
  return pool && pool->max_2x2();
}

}  // namespace

std::vector<std::shared_ptr<Module>> fold_convolutions(
    const std::vector<std::shared_ptr<Module>>& layers) {
  std::vector<std::shared_ptr<Module>> folded;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    const auto next = [&](std::size_t k) {
      return i + k < layers.size() ? layers[i + k] : nullptr;
    };
    if (!dynamic_cast<const Conv2d*>(layers[i].get())) {
      folded.push_back(layers[i]);
      continue;
    }
    // Only a batch norm in evaluation is a fixed scale and shift.
    const bool with_norm = is_type(next(1), "batch_norm2d") &&
                           dynamic_cast<const BatchNorm*>(next(1).get()) && !next(1)->is_training();
    const std::size_t relu_at = with_norm ? 2 : 1;
    const bool with_relu = is_type(next(relu_at), "relu");
    const bool with_pool = with_relu && is_pool_2x2(next(relu_at + 1));
    std::shared_ptr<Module> layer =
        with_norm || with_relu
            ? fold(*layers[i], with_norm ? next(1).get() : nullptr, {with_relu, with_pool})
            : nullptr;
    if (!layer) {
      folded.push_back(layers[i]);
      continue;
    }
    folded.push_back(layer);
    i += (with_norm ? 1 : 0) + (with_relu ? 1 : 0) + (with_pool ? 1 : 0);
  }
  return folded;
}

}  // namespace lathe::detail
