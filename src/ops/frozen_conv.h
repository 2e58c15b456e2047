#pragma once
// Internal: a convolution whose weights never change (the inference plan's folded layers,
// src/deploy/conv_folding.cpp). Where it runs Winograd's F(2x2, 3x3), the filter transform is
// made once when it is built instead of at every call: at batch 1 that transform was an eighth
// of the exported CNN's time. Forward only: it records no gradients.
#include "lathe/ops.h"
#include "lathe/tensor.h"

namespace lathe::detail {

class FrozenConv2d {
 public:
  FrozenConv2d(Tensor weight, Tensor bias, Conv2dOptions options);
  // conv2d(input, weight, bias, options), or conv2d_relu's values where `relu`.
  Tensor forward(const Tensor& input, bool relu) const;

 private:
  Tensor weight_, bias_;
  Conv2dOptions options_;
  Tensor filters_;  // winograd_filters of the weights; undefined where Winograd does not apply
};

}  // namespace lathe::detail
