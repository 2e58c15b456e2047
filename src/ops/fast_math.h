#pragma once
// Internal: tanh for element-wise loops that the compiler can vectorize. libm's tanhf is a call
// per element (it was a quarter of a GPT training step, in GELU); this one is straight-line
// float arithmetic. Double stays on std::tanh, so the float64 gradient checks see libm's values.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

namespace lathe::detail {

// exp(x) for x <= 0: Cephes' expf (range reduction by ln 2 in two parts, a degree-6
// polynomial), within 2 ulp of exp; inputs below -87 give about 2^-126; NaN stays NaN. The clamp
// keeps the integer conversion below in range.
inline float exp_nonpositive(float input) {
  float x = input > -87.0f ? input : -87.0f;
  // Rounds to the nearest integer by adding and subtracting 1.5 * 2^23 (std::floor does not
  // vectorize here).
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const float result = p * std::bit_cast<float>((static_cast<std::int32_t>(n) + 127) << 23);
  return std::isnan(input) ? input : result;
}

// tanh(x) = sign(x) (1 - e) / (1 + e) with e = exp(-2|x|): absolute error below 1e-7; NaN stays
// NaN.
inline float tanh_fast(float x) {
  const float e = exp_nonpositive(-2.0f * std::abs(x));
  return std::copysign((1.0f - e) / (1.0f + e), x);
}
inline double tanh_fast(double x) {
  return std::tanh(x);
}

}  // namespace lathe::detail
