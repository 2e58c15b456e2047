// Int8Linear: a linear layer in int8 for one example at a time; see int8_linear.h.
#include "src/deploy/int8_linear.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "lathe/error.h"

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define LATHE_INT8_VNNI 1
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*, which -Wmaybe-uninitialized reports
// once they are inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#endif

namespace lathe::detail {
namespace {

constexpr std::int64_t kInt8Lanes = 16;       // int32 sums per 512-bit vector
constexpr std::int64_t kGroup = 4;            // byte pairs summed into one int32 lane
constexpr std::int64_t kInt8TileVectors = 8;  // sums held in registers per pass
// How many groups of weight rows ahead vnni_tile asks for. Seed MLP at batch 1, 4 alternating
// runs: 575-610k examples/s at 4, against 485-513k without, 536-595k at 2, 465-572k at 8.
constexpr std::int64_t kPrefetchGroups = 4;

// How an example's values map to unsigned bytes: x ~ scale * (q - zero_point), with 0 exact.
struct InputQuantization {
  float scale = 1, inverse = 1;
  std::int32_t zero_point = 0;
  bool finite = true;
};

// The range of an example's values, widened to hold 0, and a sum that is NaN once any value is
// NaN or infinite.
struct Range {
  float lo = 0, hi = 0, check = 0;

  void extend(const float* x, std::int64_t from, std::int64_t to) {
    for (std::int64_t j = from; j < to; ++j) {
      lo = std::min(lo, x[j]);
      hi = std::max(hi, x[j]);
      check += x[j] * 0.0f;
    }
  }
};

InputQuantization quantization_of(const Range& range_of_x) {
  const float lo = range_of_x.lo, hi = range_of_x.hi;
  InputQuantization q;
  q.finite = range_of_x.check == 0 && std::isfinite(lo) && std::isfinite(hi);
  // In double, since hi - lo may exceed float's range and 255 / (hi - lo) may too.
  const double range = static_cast<double>(hi) - static_cast<double>(lo);
  const auto inverse = static_cast<float>(255.0 / range);
  // All zeros (every byte 0, so the outputs are the bias), or a range so small (under 1e-36)
  // that float cannot hold its inverse: the inputs are then treated as zeros.
  if (!q.finite || range == 0 || !std::isfinite(inverse)) return q;
  q.scale = static_cast<float>(range / 255.0);
  q.inverse = inverse;
  q.zero_point =
      static_cast<std::int32_t>(std::clamp(std::nearbyint(-lo * q.inverse), 0.0f, 255.0f));
  return q;
}

void to_bytes(const float* x, std::int64_t from, std::int64_t to, const InputQuantization& q,
              std::uint8_t* bytes) {
  for (std::int64_t j = from; j < to; ++j) {
    const float level = std::nearbyint(x[j] * q.inverse) + static_cast<float>(q.zero_point);
    // NaN (from a non-finite input, whose outputs are NaN anyway) gives 0 as in the VNNI sweep:
    // converting NaN to an integer is undefined behaviour (UBSan's float-cast-overflow).
    bytes[j] = level > 0.0f ? static_cast<std::uint8_t>(std::min(level, 255.0f)) : 0;
  }
}

// x's quantization, and x as bytes.
InputQuantization quantize_portable(const float* x, std::int64_t in, std::uint8_t* bytes) {
  Range range;
  range.extend(x, 0, in);
  const InputQuantization q = quantization_of(range);
  to_bytes(x, 0, in, q, bytes);
  return q;
}

#ifdef LATHE_INT8_VNNI
InputQuantization quantize_vnni(const float* x, std::int64_t in, std::uint8_t* bytes) {
  __m512 lo = _mm512_setzero_ps(), hi = _mm512_setzero_ps(), check = _mm512_setzero_ps();
  std::int64_t j = 0;
  for (; j + kInt8Lanes <= in; j += kInt8Lanes) {
    const __m512 v = _mm512_loadu_ps(x + j);
    lo = _mm512_min_ps(lo, v);
    hi = _mm512_max_ps(hi, v);
    check = _mm512_add_ps(check, _mm512_mul_ps(v, _mm512_setzero_ps()));
  }
  Range range{_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi), _mm512_reduce_add_ps(check)};
  range.extend(x, j, in);
  const InputQuantization q = quantization_of(range);
  const __m512 inverse = _mm512_set1_ps(q.inverse);
  const __m512i zero_point = _mm512_set1_epi32(q.zero_point);
  for (j = 0; j + kInt8Lanes <= in; j += kInt8Lanes) {
    // Round to nearest even like std::nearbyint, then saturate to bytes as the clamp does.
    const __m512i level = _mm512_add_epi32(
        _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x + j), inverse)), zero_point);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + j),
                     _mm512_cvtusepi32_epi8(_mm512_max_epi32(level, _mm512_setzero_si512())));
  }
  to_bytes(x, j, in, q, bytes);
  return q;
}

// Sums of V vectors of outputs over all groups of inputs: per group, the example's 4 bytes
// broadcast against V vectors of 16 outputs by 4 weights, summed in registers.
template <std::int64_t V>
void vnni_tile(const std::uint8_t* bytes, std::int64_t groups, const std::int8_t* w,
               std::int64_t padded_out, std::int32_t* sums) {
  __m512i acc[V];
  for (std::int64_t v = 0; v < V; ++v) acc[v] = _mm512_setzero_si512();
  for (std::int64_t g = 0; g < groups; ++g) {
    std::int32_t four;
    std::memcpy(&four, bytes + g * kGroup, sizeof four);
    const __m512i xs = _mm512_set1_epi32(four);
    const std::int8_t* row = w + g * padded_out * kGroup;
    if (g + kPrefetchGroups < groups)
      for (std::int64_t v = 0; v < V; ++v)
        __builtin_prefetch(row + (kPrefetchGroups * padded_out + v * kInt8Lanes) * kGroup);
    for (std::int64_t v = 0; v < V; ++v)
      acc[v] = _mm512_dpbusd_epi32(acc[v], xs, _mm512_loadu_si512(row + v * kInt8Lanes * kGroup));
  }
  for (std::int64_t v = 0; v < V; ++v) _mm512_storeu_si512(sums + v * kInt8Lanes, acc[v]);
}

void vnni_sums(const std::uint8_t* bytes, std::int64_t groups, const std::int8_t* w,
               std::int64_t padded_out, std::int64_t vectors, std::int32_t* sums) {
  [&]<std::int64_t... V>(std::integer_sequence<std::int64_t, V...>) {
    ((vectors == V + 1 ? vnni_tile<V + 1>(bytes, groups, w, padded_out, sums) : void()), ...);
  }
  (std::make_integer_sequence<std::int64_t, kInt8TileVectors>{});
}
#endif

}  // namespace

Int8Linear::Int8Linear(const float* weight_in_out, std::int64_t ld, const float* bias,
                       std::int64_t in, std::int64_t out, bool relu_after)
    : in_(in),
      out_(out),
      groups_((in + kGroup - 1) / kGroup),
      padded_out_((out + kInt8Lanes - 1) / kInt8Lanes * kInt8Lanes),
      relu_after_(relu_after) {
  if (in > kMaxInputs)
    throw Error(
        fmt::format("int8 inference: a linear layer with {} inputs (at most {}: more "
                    "could overflow its int32 sums)",
                    in, kMaxInputs));
  weight_.assign(static_cast<std::size_t>(groups_ * padded_out_ * kGroup), 0);
  scale_.assign(static_cast<std::size_t>(padded_out_), 0.0f);
  column_sum_.assign(static_cast<std::size_t>(padded_out_), 0);
  bias_.assign(static_cast<std::size_t>(padded_out_), 0.0f);
  for (std::int64_t o = 0; o < out; ++o) {
    float largest = 0;
    for (std::int64_t j = 0; j < in; ++j) {
      const float w = weight_in_out[j * ld + o];
      if (!std::isfinite(w))
        throw Error(
            fmt::format("int8 inference: weight [{}, {}] (input, output) of a linear "
                        "layer is {}; it cannot be quantized",
                        j, o, w));
      largest = std::max(largest, std::abs(w));
    }
    scale_[o] = largest / 127.0f;
    if (!(scale_[o] > 0)) scale_[o] = 1.0f;  // all zeros, or too small to scale: zeros
    for (std::int64_t j = 0; j < in; ++j) {
      const float level =
          std::clamp(std::nearbyint(weight_in_out[j * ld + o] / scale_[o]), -127.0f, 127.0f);
      const auto w = static_cast<std::int8_t>(level);
      weight_[((j / kGroup) * padded_out_ + o) * kGroup + j % kGroup] = w;
      column_sum_[o] += w;
    }
    if (bias != nullptr) bias_[o] = bias[o];
    largest_scale_ = std::max(largest_scale_, scale_[o]);
  }
}

void Int8Linear::forward_row(const float* x, float* y, [[maybe_unused]] bool portable) const {
  std::uint8_t bytes[kMaxInputs + kGroup];
  std::fill(bytes + in_, bytes + groups_ * kGroup, std::uint8_t{0});  // a whole last group
  std::int32_t sums[kInt8TileVectors * kInt8Lanes];
  InputQuantization q;
#ifdef LATHE_INT8_VNNI
  q = portable ? quantize_portable(x, in_, bytes) : quantize_vnni(x, in_, bytes);
#else
  q = quantize_portable(x, in_, bytes);
#endif
  if (!q.finite) {
    std::fill_n(y, out_, std::numeric_limits<float>::quiet_NaN());
    return;
  }
  for (std::int64_t column = 0; column < padded_out_; column += kInt8TileVectors * kInt8Lanes) {
    const std::int64_t width = std::min(kInt8TileVectors * kInt8Lanes, padded_out_ - column);
    const std::int8_t* w = weight_.data() + column * kGroup;
#ifdef LATHE_INT8_VNNI
    if (!portable) {
      vnni_sums(bytes, groups_, w, padded_out_, width / kInt8Lanes, sums);
    } else
#endif
    {
      std::fill_n(sums, width, 0);
      for (std::int64_t g = 0; g < groups_; ++g)
        for (std::int64_t o = 0; o < width; ++o)
          for (std::int64_t t = 0; t < kGroup; ++t)
            sums[o] += std::int32_t{bytes[g * kGroup + t]} *
                       std::int32_t{w[(g * padded_out_ + o) * kGroup + t]};
    }
    const std::int64_t end = std::min(width, out_ - column);
    // Scales, bias and relu in T: float, unless the scales' product overflows float (inputs and
    // weights near float's limit); then double, so that a zero sum gives the bias rather than
    // 0 * inf. Always in double (a loop that no longer vectorizes) cost about 5% of a seed-MLP
    // call.
    const auto finish = [&]<class T>(T) {
      for (std::int64_t o = 0; o < end; ++o) {
        const std::int64_t c = column + o;
        const std::int32_t centred = sums[o] - q.zero_point * column_sum_[c];
        const auto value = static_cast<float>(
            std::fma(static_cast<T>(centred), static_cast<T>(q.scale) * scale_[c], T{bias_[c]}));
        y[c] = relu_after_ ? std::max(value, 0.0f) : value;
      }
    };
    if (std::isfinite(q.scale * largest_scale_))
      finish(0.0f);
    else
      finish(0.0);
  }
}

}  // namespace lathe::detail
