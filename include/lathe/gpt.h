#pragma once
// A GPT-style language model (src/nn/gpt.cpp, its key/value cache in src/nn/gpt_decoder.cpp):
// token and position embeddings, pre-LayerNorm blocks of causal
// multi-head attention and a GELU MLP, a final LayerNorm, and an output head tied to the token
// embedding. Parameter names match ../shared/reference/torch_gpt.py ("wte.weight",
// "blocks.0.qkv.weight", "lnf.bias", ...), so weights move between the two by name.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/language_model.h"
#include "lathe/nn.h"
#include "lathe/random.h"
#include "lathe/tensor.h"

namespace lathe {

struct GPTConfig {
  std::int64_t n_layer = 4;
  std::int64_t n_head = 4;
  std::int64_t n_embd = 128;  // a multiple of n_head
  std::int64_t block_size = 64;
  std::int64_t vocab_size = 0;  // from the tokenizer
  double dropout = 0.0;         // on the embeddings and on each residual branch, in training
  bool bias = true;             // in the linear layers and LayerNorms
  // Initialization only (not saved with the model): GPT-2's std 0.02 / sqrt(2 n_layer) for the
  // two projections that add into the residual stream; false: 0.02 like every other weight, as
  // ../shared/reference/torch_gpt.py initializes them.
  bool scaled_residual_init = true;

  nlohmann::json to_json() const;
  // Validates every field (untrusted: it may come from a bundle); errors name the field.
  static GPTConfig from_json(const nlohmann::json& json);
  void validate() const;
  // Every parameter's name and shape, in registration order (a bundle reader checks a file's
  // tensors against it before building the model).
  std::vector<std::pair<std::string, Shape>> parameter_shapes() const;
};

class GPT : public CausalLanguageModel {
 public:
  // Weights N(0, 0.02), biases 0, LayerNorm weights 1; the residual projections (attention
  // output and MLP output) N(0, 0.02 / sqrt(2 * n_layer)), as GPT-2, unless
  // config.scaled_residual_init is false.
  GPT(GPTConfig config, Generator& generator, DType dtype = DType::Float32);
  // tokens int64 [B, T] with T <= block_size -> logits [B, T, vocab_size].
  Tensor forward(const Tensor& tokens) override;
  // The mean cross-entropy of predicting targets [B, T] from tokens [B, T].
  Tensor loss(const Tensor& tokens, const Tensor& targets);
  std::string type() const override { return "gpt"; }
  nlohmann::json spec() const override;  // {"type": "gpt", n_layer, ...}
  const GPTConfig& config() const { return config_; }
  std::int64_t vocab_size() const override { return config_.vocab_size; }
  std::int64_t context_size() const override { return config_.block_size; }
  // A key/value cache that runs the blocks' own layers one position at a time.
  std::unique_ptr<Decoder> decoder() override;

  // The parts, for the cached generation path.
  const Tensor& token_embedding() const { return wte_; }     // [vocab_size, C]
  const Tensor& position_embedding() const { return wpe_; }  // [block_size, C]
  const std::vector<std::shared_ptr<Module>>& blocks() const { return blocks_; }
  Module& final_norm() const { return *lnf_; }

 private:
  Tensor hidden(const Tensor& tokens);  // the final LayerNorm's output [B*T, C]

  GPTConfig config_;
  Tensor wte_, wpe_;
  std::vector<std::shared_ptr<Module>> blocks_;
  std::shared_ptr<Module> lnf_, dropout_;
};

}  // namespace lathe
