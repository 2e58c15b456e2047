#pragma once
// Internal: the inference plan's folding of image layers. In evaluation a batch norm is a fixed
// per-channel scale and shift, so after a convolution it can be folded into the convolution's
// weights and bias, and a relu after them applied as the convolution writes its output
// (conv2d_relu): the two passes over the activations that batch norm and relu made are gone. A
// 2x2 max pool after the relu is applied there too (ConvEpilogue), so the convolution writes a
// quarter of the values and the pool's own pass is gone as well.
#include <memory>
#include <vector>

#include "lathe/nn.h"

namespace lathe::detail {

// `layers` with every float32 conv2d followed by batch_norm2d (in evaluation mode) and/or relu
// (then possibly max_pool2d with kernel 2, stride 2, no padding) replaced by one folded
// convolution. The folded layers hold copies of the weights, taken from the
// running statistics as they are now; the model itself is not changed.
std::vector<std::shared_ptr<Module>> fold_convolutions(
    const std::vector<std::shared_ptr<Module>>& layers);

}  // namespace lathe::detail
