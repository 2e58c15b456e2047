#pragma once
// Internal: what a convolution's forward pass does to its outputs as it writes them, after adding
// the bias, so that no pass of its own goes over the activations.
namespace lathe::detail {

struct ConvEpilogue {
  bool relu = false;  // max(y, 0); NaN becomes 0, as relu does
  // Then a 2x2, stride-2 max pool without padding: the convolution writes [N, O, OH / 2, OW / 2]
  // (an odd last row or column is dropped, as max_pool2d drops it). Only after relu, whose
  // outputs hold no NaN, so the window's maximum needs no NaN rule.
  bool max_pool = false;
};

}  // namespace lathe::detail
