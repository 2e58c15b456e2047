#pragma once
// Internal: a convolution whose weights never change (the inference plan's folded layers,
// src/deploy/conv_folding.cpp). Where it runs Winograd's F(2x2, 3x3), the filter transform is
// made once when it is built instead of at every call: at batch 1 that transform was an eighth
// of the exported CNN's time. A relu and a 2x2 max pool after it are applied as it writes its
// outputs (ConvEpilogue). Forward only: it records no gradients.
#include "lathe/ops.h"
#include "lathe/tensor.h"
#include "src/ops/conv_epilogue.h"

namespace lathe::detail {

class FrozenConv2d {
 public:
  // Throws where `epilogue` pools without relu.
  FrozenConv2d(Tensor weight, Tensor bias, Conv2dOptions options, ConvEpilogue epilogue);
  // conv2d(input, weight, bias, options), then the epilogue: conv2d_relu's values with relu, and
  // with max_pool those of max_pool2d(.., 2x2, stride 2) after it.
  Tensor forward(const Tensor& input) const;

 private:
  Tensor weight_, bias_;
  Conv2dOptions options_;
  ConvEpilogue epilogue_;
  Tensor filters_;  // winograd_filters of the weights; undefined where Winograd does not apply
};

}  // namespace lathe::detail
