#pragma once
// Internal: a 2x2, stride-2 max pool's row kernels, shared by max_pool2d (pool.cpp) and
// batch_norm_relu_max_pool2d (normalization.cpp), which must pick the same element of every
// window.
#include <algorithm>
#include <bit>
#include <cstdint>
#include <limits>
#include <type_traits>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace lathe::detail {

// Keeps (value, at) when candidate v is not larger, without a branch: pooling compares image
// data, which branch prediction cannot learn, and the compiler turns even ternaries into
// branches here, so the selection is done on the bits. Padding never competes; a NaN wins, as in
// PyTorch, so it propagates instead of hiding.
template <class T>
inline void keep_max(T& value, std::int64_t& at, T v, std::int64_t v_at) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  const bool take = (v > value) | ((v != v) & (value == value));  // larger, or the first NaN
  const std::int64_t mask = -static_cast<std::int64_t>(take);
  at = (v_at & mask) | (at & ~mask);
  const Bits bits = static_cast<Bits>(mask);
  value = std::bit_cast<T>((std::bit_cast<Bits>(v) & bits) | (std::bit_cast<Bits>(value) & ~bits));
}

// One output row of a 2x2, stride-2 max pool, 16 outputs at a time; returns where the caller's
// scalar loop goes on (0 where there is no vector form, the row's end where there is). Each window
// is a tournament (each input row's pair, then the two winners) that picks what keep_max's chain
// picks: the first maximum, or the first NaN. `top` is the window row's offset in the plane, for
// `from` (nullptr: not wanted).
template <class T>
inline std::int64_t max_pool_row_2x2_simd(const T*, const T*, std::int64_t, std::int64_t,
                                          std::int64_t, T*, std::int64_t*) {
  return 0;
}

#ifdef __AVX512F__
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*, which -Wmaybe-uninitialized reports
// once they are inlined (pushed and popped: unity builds share this file's pragmas).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// True where `second` replaces `first`: larger, or the first NaN.
inline __mmask16 replaces(__m512 first, __m512 second) {
  return _mm512_cmp_ps_mask(second, first, _CMP_GT_OQ) |
         (_mm512_cmp_ps_mask(second, second, _CMP_UNORD_Q) &
          _mm512_cmp_ps_mask(first, first, _CMP_ORD_Q));
}

template <>
inline std::int64_t max_pool_row_2x2_simd(const float* r0, const float* r1, std::int64_t w,
                                          std::int64_t ow, std::int64_t top, float* out,
                                          std::int64_t* from) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512i one = _mm512_set1_epi32(1), below = _mm512_set1_epi32(static_cast<int>(w));
  if (w > std::numeric_limits<std::int32_t>::max() / 4) return 0;  // offsets are int32 lanes
  const __m512i row_start = _mm512_set1_epi64(top);
  for (std::int64_t x = 0; x < ow; x += 16) {
    // The last vector of a row is partial (the CNN's rows are 14 and 7 outputs wide): masked
    // loads read nothing beyond the row, and masked stores write nothing beyond it.
    const std::int64_t n = std::min<std::int64_t>(16, ow - x);
    const auto first_inputs = static_cast<__mmask16>(n >= 8 ? 0xFFFF : (1u << (2 * n)) - 1);
    const auto last_inputs = static_cast<__mmask16>(n > 8 ? (1u << (2 * n - 16)) - 1 : 0);
    const auto outputs = static_cast<__mmask16>((1u << n) - 1);
    const __m512 lo0 = _mm512_maskz_loadu_ps(first_inputs, r0 + 2 * x);
    const __m512 hi0 = _mm512_maskz_loadu_ps(last_inputs, r0 + 2 * x + 16);
    const __m512 lo1 = _mm512_maskz_loadu_ps(first_inputs, r1 + 2 * x);
    const __m512 hi1 = _mm512_maskz_loadu_ps(last_inputs, r1 + 2 * x + 16);
    const __m512 a = _mm512_permutex2var_ps(lo0, even, hi0);
    const __m512 b = _mm512_permutex2var_ps(lo0, odd, hi0);
    const __m512 c = _mm512_permutex2var_ps(lo1, even, hi1);
    const __m512 d = _mm512_permutex2var_ps(lo1, odd, hi1);
    const __mmask16 right_top = replaces(a, b), right_bottom = replaces(c, d);
    const __m512 upper = _mm512_mask_blend_ps(right_top, a, b);
    const __m512 lower = _mm512_mask_blend_ps(right_bottom, c, d);
    const __mmask16 bottom = replaces(upper, lower);
    _mm512_mask_storeu_ps(out + x, outputs, _mm512_mask_blend_ps(bottom, upper, lower));
    if (!from) continue;
    // Where in the plane: top + 2 (x + lane) + (bottom ? w + right_bottom : right_top).
    const __m512i in_top = _mm512_maskz_mov_epi32(right_top, one);
    const __m512i in_bottom = _mm512_mask_add_epi32(below, right_bottom, below, one);
    const __m512i offset = _mm512_add_epi32(_mm512_add_epi32(even, _mm512_set1_epi32(2 * x)),
                                            _mm512_mask_blend_epi32(bottom, in_top, in_bottom));
    const __m512i first8 = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(offset));
    const __m512i last8 = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(offset, 1));
    _mm512_mask_storeu_epi64(from + x, static_cast<__mmask8>(outputs),
                             _mm512_add_epi64(first8, row_start));
    _mm512_mask_storeu_epi64(from + x + 8, static_cast<__mmask8>(outputs >> 8),
                             _mm512_add_epi64(last8, row_start));
  }
  return ow;
}
#pragma GCC diagnostic pop
#endif

// One output row of a 2x2, stride-2 max pool from input rows r0 and r1 (`top`: r0's offset in
// its plane): the maxima, and where each came from as an offset in the plane (`from` nullptr:
// not wanted).
template <class T>
[[gnu::always_inline]] inline void max_pool_row_2x2(const T* r0, const T* r1, std::int64_t w,
                                                    std::int64_t ow, std::int64_t top, T* out,
                                                    std::int64_t* from) {
  for (std::int64_t x = max_pool_row_2x2_simd(r0, r1, w, ow, top, out, from); x < ow; ++x) {
    std::int64_t best = top + 2 * x;
    T value = r0[2 * x];
    keep_max(value, best, r0[2 * x + 1], best + 1);
    keep_max(value, best, r1[2 * x], top + w + 2 * x);
    keep_max(value, best, r1[2 * x + 1], top + w + 2 * x + 1);
    out[x] = value;
    if (from) from[x] = best;
  }
}

// A whole [h, w] plane (an odd last row or column is in no window); `from` as above.
template <class T>
void max_pool_plane_2x2(const T* in, std::int64_t h, std::int64_t w, T* out, std::int64_t* from) {
  const std::int64_t ow = w / 2;
  for (std::int64_t y = 0; y < h / 2; ++y)
    max_pool_row_2x2(in + 2 * y * w, in + (2 * y + 1) * w, w, ow, 2 * y * w, out + y * ow,
                     from ? from + y * ow : nullptr);
}

}  // namespace lathe::detail
