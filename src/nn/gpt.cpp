// The GPT model: configuration, blocks, forward pass and loss.
#include "lathe/gpt.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lathe/error.h"
#include "lathe/ops.h"
#include "src/nn/gpt_block.h"

namespace lathe {
namespace {

// Bounds that keep a hostile configuration (from a bundle) from asking for absurd memory; far
// above any model a CPU trains.
constexpr std::int64_t kMaxDimension = 1 << 20;
constexpr std::int64_t kMaxParameters = std::int64_t{1} << 32;

void require_in(const char* key, std::int64_t value, std::int64_t low, std::int64_t high) {
  if (value < low || value > high)
    throw Error(fmt::format("gpt: {} must be in [{}, {}], got {}", key, low, high, value));
}

std::int64_t integer_field(const nlohmann::json& json, const char* key) {
  if (!json.contains(key)) throw Error(fmt::format("gpt: missing key '{}'", key));
  const auto& value = json.at(key);
  if (!value.is_number_integer())
    throw Error(fmt::format("gpt: '{}' must be an integer, got {}", key, value.dump()));
  return value.get<std::int64_t>();
}

}  // namespace

nlohmann::json GPTConfig::to_json() const {
  return {{"n_layer", n_layer},
          {"n_head", n_head},
          {"n_embd", n_embd},
          {"block_size", block_size},
          {"vocab_size", vocab_size},
          {"dropout", dropout},
          {"bias", bias}};
}

GPTConfig GPTConfig::from_json(const nlohmann::json& json) {
  if (!json.is_object()) throw Error("gpt: the configuration must be a JSON object");
  static const char* known[] = {"type",       "n_layer",    "n_head",  "n_embd",
                                "block_size", "vocab_size", "dropout", "bias"};
  for (const auto& item : json.items()) {
    const std::string& key = item.key();  // not a structured binding: clang 14 cannot capture one
    if (std::find_if(std::begin(known), std::end(known),
                     [&key](const char* k) { return key == k; }) == std::end(known))
      throw Error(fmt::format("gpt: unknown key '{}'", key));
  }
  if (json.contains("type") && json.at("type") != "gpt")
    throw Error(fmt::format("gpt: type must be \"gpt\", got {}", json.at("type").dump()));
  GPTConfig config;
  config.n_layer = integer_field(json, "n_layer");
  config.n_head = integer_field(json, "n_head");
  config.n_embd = integer_field(json, "n_embd");
  config.block_size = integer_field(json, "block_size");
  config.vocab_size = integer_field(json, "vocab_size");
  if (json.contains("dropout")) {
    if (!json.at("dropout").is_number()) throw Error("gpt: 'dropout' must be a number");
    config.dropout = json.at("dropout").get<double>();
  }
  if (json.contains("bias")) {
    if (!json.at("bias").is_boolean()) throw Error("gpt: 'bias' must be true or false");
    config.bias = json.at("bias").get<bool>();
  }
  config.validate();
  return config;
}

void GPTConfig::validate() const {
  require_in("n_layer", n_layer, 1, 1024);
  require_in("n_head", n_head, 1, kMaxDimension);
  require_in("n_embd", n_embd, 1, kMaxDimension);
  require_in("block_size", block_size, 1, kMaxDimension);
  require_in("vocab_size", vocab_size, 1, kMaxDimension * 16);
  if (n_embd % n_head != 0)
    throw Error(fmt::format("gpt: n_embd {} must be a multiple of n_head {}", n_embd, n_head));
  if (!(dropout >= 0 && dropout < 1))
    throw Error(fmt::format("gpt: dropout must be in [0, 1), got {}", dropout));
  std::int64_t total = 0;
  for (const auto& [name, shape] : parameter_shapes()) {
    const std::int64_t count = shape_numel(shape);
    if (count > kMaxParameters - total)
      throw Error(fmt::format("gpt: more than {} parameters", kMaxParameters));
    total += count;
  }
}

std::vector<std::pair<std::string, Shape>> GPTConfig::parameter_shapes() const {
  const std::int64_t c = n_embd;
  std::vector<std::pair<std::string, Shape>> shapes{{"wte.weight", {vocab_size, c}},
                                                    {"wpe.weight", {block_size, c}}};
  const auto add = [&](const std::string& name, Shape weight, std::int64_t bias_size) {
    shapes.emplace_back(name + ".weight", std::move(weight));
    if (bias) shapes.emplace_back(name + ".bias", Shape{bias_size});
  };
  for (std::int64_t i = 0; i < n_layer; ++i) {
    const std::string block = fmt::format("blocks.{}.", i);
    add(block + "ln1", {c}, c);
    add(block + "ln2", {c}, c);
    add(block + "qkv", {3 * c, c}, 3 * c);
    add(block + "proj", {c, c}, c);
    add(block + "fc", {4 * c, c}, 4 * c);
    add(block + "fcproj", {c, 4 * c}, c);
  }
  add("lnf", {c}, c);
  return shapes;
}

namespace detail {

GPTBlock::GPTBlock(const GPTConfig& config, Generator& generator, DType dtype)
    : heads(config.n_head) {
  const std::int64_t c = config.n_embd;
  ln1 = std::make_shared<LayerNorm>(c, 1e-5, config.bias, dtype);
  ln2 = std::make_shared<LayerNorm>(c, 1e-5, config.bias, dtype);
  // PyTorch's [out, in] weights throughout: the GPT's products have hundreds of rows and split
  // by rows, where the layout buys nothing, and its initialization draws in storage order.
  constexpr WeightLayout kOutIn = WeightLayout::OutIn;
  qkv = std::make_shared<Linear>(c, 3 * c, config.bias, generator, dtype, kOutIn);
  proj = std::make_shared<Linear>(c, c, config.bias, generator, dtype, kOutIn);
  fc = std::make_shared<Linear>(c, 4 * c, config.bias, generator, dtype, kOutIn);
  fcproj = std::make_shared<Linear>(4 * c, c, config.bias, generator, dtype, kOutIn);
  drop = std::make_shared<Dropout>(config.dropout);
  // Registered in torch_gpt.py's order, so named_parameters() lists them as PyTorch does.
  register_module("ln1", ln1);
  register_module("ln2", ln2);
  register_module("qkv", qkv);
  register_module("proj", proj);
  register_module("fc", fc);
  register_module("fcproj", fcproj);
  register_module("drop", drop);
}

Tensor GPTBlock::feed_forward(const Tensor& x) {
  return x + drop->forward(
                 fcproj->forward(gelu(fc->forward(ln2->forward(x)), GeluApproximation::Tanh)));
}

Tensor GPTBlock::forward(const Tensor& x) {
  const std::int64_t b = x.size(0), t = x.size(1), c = x.size(2);
  const Tensor rows = reshape(x, {b * t, c});
  const Tensor packed = reshape(qkv->forward(ln1->forward(rows)), {b, t, 3 * c});
  const Tensor attended = reshape(causal_attention(packed, heads), {b * t, c});
  const Tensor after_attention = rows + drop->forward(proj->forward(attended));
  return reshape(feed_forward(after_attention), {b, t, c});
}

}  // namespace detail

GPT::GPT(GPTConfig config, Generator& generator, DType dtype) : config_(std::move(config)) {
  config_.validate();
  if (!is_floating(dtype))
    throw Error(fmt::format("gpt: dtype {} is not floating point", dtype_name(dtype)));
  const std::int64_t c = config_.n_embd;
  auto wte = std::make_shared<Embedding>(config_.vocab_size, c, generator, dtype);
  auto wpe = std::make_shared<Embedding>(config_.block_size, c, generator, dtype);
  register_module("wte", wte);
  register_module("wpe", wpe);
  auto blocks = std::make_shared<Sequential>();
  for (std::int64_t i = 0; i < config_.n_layer; ++i) {
    auto block = std::make_shared<detail::GPTBlock>(config_, generator, dtype);
    blocks_.push_back(block);
    blocks->append(block);
  }
  register_module("blocks", blocks);
  lnf_ = std::make_shared<LayerNorm>(c, 1e-5, config_.bias, dtype);
  register_module("lnf", lnf_);
  dropout_ = std::make_shared<Dropout>(config_.dropout);
  register_module("drop", dropout_);
  wte_ = wte->weight();
  wpe_ = wpe->weight();

  // GPT-2's initialization: N(0, 0.02) everywhere, the two projections that add into the
  // residual stream scaled by 1/sqrt(2 * n_layer) so its variance does not grow with depth.
  const double residual_std = config_.scaled_residual_init
                                  ? 0.02 / std::sqrt(2.0 * static_cast<double>(config_.n_layer))
                                  : 0.02;
  for (const NamedTensor& p : named_parameters()) {
    Tensor t = p.tensor;
    const bool is_norm = p.name.find("ln") != std::string::npos;
    if (is_norm) continue;  // LayerNorm: weight 1, bias 0 already
    if (p.name.ends_with(".bias")) {
      t.fill_(0);
    } else {
      const bool residual = p.name.ends_with("proj.weight");  // ".proj.weight" and ".fcproj.weight"
      normal_(t, 0.0, residual ? residual_std : 0.02, generator);
    }
  }
}

Tensor GPT::hidden(const Tensor& tokens) {
  if (!tokens.defined() || tokens.dtype() != DType::Int64 || tokens.dim() != 2)
    throw Error(fmt::format("gpt: tokens must be int64 [batch, time], got {} {}",
                            tokens.defined() ? dtype_name(tokens.dtype()) : "undefined",
                            tokens.defined() ? shape_str(tokens.shape()) : ""));
  const std::int64_t t = tokens.size(1);
  if (t < 1 || t > config_.block_size)
    throw Error(fmt::format("gpt: sequence length {} is outside [1, block_size {}]", t,
                            config_.block_size));
  const Tensor positions = index_select(wpe_, 0, Tensor::arange(t, DType::Int64));
  const Tensor embedded = index_select(wte_, 0, reshape(tokens, {tokens.numel()}));
  Tensor x = dropout_->forward(reshape(embedded, {tokens.size(0), t, config_.n_embd}) + positions);
  for (const auto& block : blocks_) x = block->forward(x);
  return lnf_->forward(reshape(x, {tokens.numel(), config_.n_embd}));
}

Tensor GPT::forward(const Tensor& tokens) {
  const Tensor logits = matmul(hidden(tokens), wte_, false, true);
  return reshape(logits, {tokens.size(0), tokens.size(1), config_.vocab_size});
}

Tensor GPT::loss(const Tensor& tokens, const Tensor& targets) {
  if (!targets.defined() || targets.shape() != tokens.shape())
    throw Error(fmt::format("gpt: targets {} must have the shape of tokens {}",
                            targets.defined() ? shape_str(targets.shape()) : "undefined",
                            shape_str(tokens.shape())));
  const Tensor logits = matmul(hidden(tokens), wte_, false, true);
  return cross_entropy(logits, reshape(targets, {targets.numel()}));
}

nlohmann::json GPT::spec() const {
  nlohmann::json spec = config_.to_json();
  spec["type"] = type();
  return spec;
}

}  // namespace lathe
