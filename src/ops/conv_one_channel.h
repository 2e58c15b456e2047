#pragma once
// Internal: a 3x3, stride-1 float32 convolution of a one-channel input (an image network's first
// layer on grey images) followed by relu and a 2x2 max pool, for the inference plan, computed
// directly: each output vector is 9 multiply-adds of shifted rows of the zero-padded image, and
// the relu and the pool happen in registers, so the full-size output is never written. Without
// the pool, im2col's product (9 rows of taps) was the faster of the two and stays.
#include <cstdint>

namespace lathe::detail {

struct OneChannelShape {
  std::int64_t n, h, w;       // input [N, 1, H, W]
  std::int64_t o;             // weight [O, 1, 3, 3]
  std::int64_t pad_h, pad_w;  // zero padding (any; the output is H + 2 pad - 2 high)
  std::int64_t oh() const { return h + 2 * pad_h - 2; }
  std::int64_t ow() const { return w + 2 * pad_w - 2; }
};

bool one_channel_applies(std::int64_t c, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                         std::int64_t stride_w, std::int64_t dilation_h, std::int64_t dilation_w,
                         std::int64_t groups);

// y [N, O, OH / 2, OW / 2] = conv(x, w) + bias (nullptr: none), then relu and a 2x2, stride-2
// max pool (ConvEpilogue{true, true}).
void one_channel_relu_pool(const OneChannelShape& s, const float* x, const float* w,
                           const float* bias, float* y);

}  // namespace lathe::detail
