#pragma once
// Internal: 3x3, stride-1 float32 convolutions by Winograd's minimal filtering F(2x2, 3x3)
// (Lavin and Gray, "Fast Algorithms for Convolutional Neural Networks", 2015). Each 2x2 block of
// outputs comes from a 4x4 input tile: both are carried into a 16-point transform domain where
// the convolution is an element-wise product summed over input channels, i.e. 16 GEMMs of
// [O, C] x [C, tiles]. That is 16 multiply-adds per channel pair and block instead of 36, 2.25x
// fewer, and the tiles of many images form one wide product (where im2col gave one small GEMM
// per image). The backward pass runs the same transforms' adjoints: the input gradient through
// the transposed weights, the weight gradient as one product summed over every tile.
#include <cstdint>

#include "lathe/tensor.h"
#include "src/ops/conv_epilogue.h"

namespace lathe::detail {

struct WinogradShape {
  std::int64_t n, c, h, w;    // input [N, C, H, W]
  std::int64_t o;             // weight [O, C, 3, 3]
  std::int64_t pad_h, pad_w;  // zero padding (any; the output is H + 2 pad - 2 high)
  std::int64_t oh() const { return h + 2 * pad_h - 2; }
  std::int64_t ow() const { return w + 2 * pad_w - 2; }
};

// Whether a convolution of this geometry runs here: a 3x3 kernel, stride and dilation 1, one
// group, float32, and enough channels on both sides that the 16 products are not degenerate
// (a one-channel first layer keeps im2col, whose 9-row product beats 16 one-row ones).
bool winograd_applies(std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                      std::int64_t stride_w, std::int64_t dilation_h, std::int64_t dilation_w,
                      std::int64_t groups, std::int64_t c, std::int64_t o);

// The transformed filters U [16, O, C] of weights w [O, C, 3, 3], which winograd_forward takes:
// computed at every call, or once for weights that never change (detail::FrozenConv2d).
Tensor winograd_filters(const WinogradShape& s, const float* w);

// y [N, O, OH, OW] = conv(x, w) + bias (nullptr: none), then `epilogue` (with max_pool y is
// [N, O, OH / 2, OW / 2]); `filters` is winograd_filters(s, w).
void winograd_forward(const WinogradShape& s, const float* x, const float* filters,
                      const float* bias, ConvEpilogue epilogue, float* y);

// dx (nullptr: not wanted) = the input gradient, dw (nullptr: not wanted) = the weight gradient;
// neither needs zeros first.
void winograd_backward(const WinogradShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw);

}  // namespace lathe::detail
