#pragma once
// Internal: one GPT transformer block, shared by the model (gpt.cpp) and the cached generation
// path (generate.cpp), which runs the same layers one position at a time.
#include <memory>

#include "lathe/gpt.h"
#include "lathe/nn.h"

namespace lathe::detail {

// x + attention(ln1(x)), then x + mlp(ln2(x)); dropout on each branch's output in training.
class GPTBlock : public Module {
 public:
  GPTBlock(const GPTConfig& config, Generator& generator, DType dtype);
  Tensor forward(const Tensor& x) override;  // [B, T, C] -> [B, T, C]
  std::string type() const override { return "gpt_block"; }
  // The MLP branch's residual update of rows x [N, C]: x + fcproj(gelu(fc(ln2(x)))).
  Tensor feed_forward(const Tensor& x);

  std::int64_t heads;
  std::shared_ptr<LayerNorm> ln1, ln2;
  std::shared_ptr<Linear> qkv, proj, fc, fcproj;
  std::shared_ptr<Dropout> drop;
};

}  // namespace lathe::detail
