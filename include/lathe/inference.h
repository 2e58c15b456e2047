#pragma once
// A trained Sequential frozen for inference: every linear layer's weights are copied once,
// transposed to [in, out] with rows padded to whole SIMD vectors, so one example is a sweep of
// broadcast multiply-adds over contiguous rows with the outputs held in registers (bias and a
// following relu folded in). OpenBLAS's GEMV reads the [out, in] layout as one dot product per
// output and measured 1.8x slower on the seed MLP's 784x128 layer. Batches of more than one
// example use GEMM on the same transposed weights.
//
// The plan is a snapshot: later changes to the module's weights are not seen. Layers other than
// linear (activations, flatten, dropout in eval mode) run through their own forward.
#include <memory>
#include <optional>
#include <vector>

#include "lathe/nn.h"
#include "lathe/tensor.h"

namespace lathe {

class InferencePlan {
 public:
  // A plan for `model` (put in eval mode by the caller), or nullopt when it is not a float32
  // Sequential with at least one linear layer; callers then use model.forward.
  static std::optional<InferencePlan> compile(const std::shared_ptr<Module>& model);

  // [N, features...] -> the model's output. Records no gradients. Safe to call from several
  // threads at once: it only reads the plan.
  Tensor forward(const Tensor& input) const;

 private:
  struct FrozenLinear {
    std::int64_t in = 0, out = 0, padded_out = 0;
    std::vector<float> weight_t;  // [in, padded_out], zeros past `out`
    std::vector<float> bias;      // [padded_out], zeros when the layer has none
    bool relu_after = false;      // the next layer is relu, folded into this one
  };
  struct Step {
    std::optional<FrozenLinear> linear;
    std::shared_ptr<Module> other;  // set when `linear` is not
  };
  std::vector<Step> steps_;
};

}  // namespace lathe
