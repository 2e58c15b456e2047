#pragma once
// Internal: a linear layer frozen in int8 for InferencePlan's Int8 precision
// (src/deploy/int8_linear.cpp). Weights are quantized once, symmetrically, with one scale per
// output; each example's input is quantized when it arrives (dynamic quantization), to unsigned
// 8 bits with a scale and zero point of its own; the products are summed exactly in int32, and
// the scales, bias and relu are applied in float32. With AVX-512 VNNI one instruction multiplies
// and sums 64 byte pairs, and the weights are a quarter of float32's bytes, which is what bounds a
// batch-1 sweep of float32 weights (L2 bandwidth, docs/PERFORMANCE.md).
#include <cstdint>
#include <vector>

namespace lathe::detail {

class Int8Linear {
 public:
  // The int32 sums, the zero point times each output's weight sum, and their difference are
  // each at most 255 * 127 * in in size: under 2^31 with room to spare up to this many inputs.
  static constexpr std::int64_t kMaxInputs = 32768;

  // From float32 weights stored [in, out] with rows `ld` apart (weight_in_out[j * ld + o]) and a
  // bias of `out` values, or null for none. Throws when in > kMaxInputs or a weight is not
  // finite.
  Int8Linear(const float* weight_in_out, std::int64_t ld, const float* bias, std::int64_t in,
             std::int64_t out, bool relu_after);

  // y[0, out) for one example x[0, in). An example with a non-finite value gives NaN outputs;
  // one whose values span under 1e-36 is taken as zeros (the outputs are the bias).
  // `portable` runs the plain C++ loop even where the VNNI one exists (both give the same sums).
  void forward_row(const float* x, float* y, bool portable = false) const;

  std::int64_t in() const { return in_; }
  std::int64_t out() const { return out_; }

 private:
  std::int64_t in_, out_, groups_, padded_out_;  // groups_: inputs in fours, padded with zeros
  std::vector<std::int8_t> weight_;              // [groups_, padded_out_, 4]
  std::vector<float> scale_;                     // [padded_out_] per output
  std::vector<std::int32_t> column_sum_;         // [padded_out_] sum of each output's weights
  std::vector<float> bias_;                      // [padded_out_]
  float largest_scale_ = 0;                      // of scale_
  bool relu_after_;
};

}  // namespace lathe::detail
