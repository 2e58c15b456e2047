#pragma once
// A trained Sequential frozen for inference: every linear layer's weights are copied once,
// transposed to [in, out] with rows padded to whole SIMD vectors, so one example is a sweep of
// broadcast multiply-adds over contiguous rows with the outputs held in registers (bias and a
// following relu folded in). OpenBLAS's GEMV reads the [out, in] layout as one dot product per
// output and measured 1.8x slower on the seed MLP's 784x128 layer. Batches of more than one
// example use GEMM on the same transposed weights.
//
// With InferencePrecision::Int8 each linear layer's weights are instead quantized to int8 (one
// scale per output) and each example's input to 8 bits when it arrives; one example is then a
// sweep of VNNI byte dot products over a quarter of the bytes (src/deploy/int8_linear.h). The
// outputs differ from float32's by the quantization error: compare a model's accuracy both ways
// (`lathe eval --precision int8`) before deploying it so.
//
// The plan is a snapshot: later changes to the module's weights are not seen. Layers other than
// linear (activations, flatten, dropout in eval mode) run through their own forward, except that
// a conv2d followed by batch_norm2d and/or relu becomes one convolution: batch norm's running
// statistics and affine parameters folded into its weights and bias, the relu applied as it
// writes its output (conv2d_relu), so neither makes a pass of its own over the activations. A
// max_pool2d of 2x2 windows at stride 2 after that relu is applied there too, and the
// full-size output is never written.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lathe/nn.h"
#include "lathe/tensor.h"

namespace lathe {

namespace detail {
class Int8Linear;
}

enum class InferencePrecision { Float32, Int8 };

// "float32" or "int8", and back; the latter throws on any other name.
const char* precision_name(InferencePrecision precision);
InferencePrecision precision_from_name(const std::string& name);

class InferencePlan {
 public:
  // A plan for `model` (put in eval mode by the caller), or nullopt when it is not a float32
  // Sequential with at least one linear layer; callers then use model.forward.
  static std::optional<InferencePlan> compile(
      const std::shared_ptr<Module>& model,
      InferencePrecision precision = InferencePrecision::Float32);

  // compile for a model that has to run at `precision`: throws, naming the model's type, where
  // it has no plan.
  static InferencePlan require(const std::shared_ptr<Module>& model, InferencePrecision precision);

  InferencePrecision precision() const { return precision_; }

  // Folds x -> x a + b (a and b one value for every input feature, or one per feature) into the
  // first linear layer, where the input reaches it through layers that only reshape (flatten,
  // reshape): W' = W diag(a), bias' = bias + W b, sums in double. Returns whether it did; from
  // then on forward expects the inputs before that map. Float32 plans only (an int8 plan's
  // weights are quantized already). The outputs differ from mapping first by float rounding.
  bool fold_input_affine(const std::vector<double>& a, const std::vector<double>& b);

  // [N, features...] -> the model's output. Records no gradients. Safe to call from several
  // threads at once: it only reads the plan.
  Tensor forward(const Tensor& input) const;

 private:
  struct FrozenLinear {
    std::int64_t in = 0, out = 0, padded_out = 0;
    std::vector<float> weight_t;                     // [in, padded_out], zeros past `out`
    std::vector<float> bias;                         // [padded_out], zeros when the layer has none
    bool relu_after = false;                         // the next layer is relu, folded into this one
    std::shared_ptr<const detail::Int8Linear> int8;  // set, and weight_t empty, in Int8
  };
  // `rows` examples from `in` [rows, layer.in] to `out` [rows, layer.out].
  static void run_linear(const FrozenLinear& layer, const float* in, std::int64_t rows, float* out);
  struct Step {
    std::optional<FrozenLinear> linear;
    std::shared_ptr<Sequential> other;  // set when `linear` is not: the layers up to the next one
  };
  std::vector<Step> steps_;
  InferencePrecision precision_ = InferencePrecision::Float32;
};

}  // namespace lathe
