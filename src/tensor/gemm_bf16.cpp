// Float32 products from bf16-rounded operands; see gemm_bf16.h.
//
// Both operands are packed first, rounded to bf16 by the CPU's own conversion (round to nearest
// even): B in panels of 16 columns, where for each pair of consecutive values along the summed
// axis the 16 columns' two values lie interleaved (32 bf16, one vector), and A as one 32-bit
// word per row and pair (the row's two values). A tile of C, 6 rows by up to 4 vectors of 16
// columns, is held in 24 registers while the pairs are walked: per pair, 4 vectors of B against
// 6 broadcast words of A, each VDPBF16PS adding two products to each of 16 float32 sums, twice
// the multiply-adds of a float32 FMA. C is written once, as alpha sums + beta C.
#include "src/tensor/gemm_bf16.h"

#include <atomic>
#include <bit>
#include <cstring>
#include <utility>
#include <vector>

#include "lathe/error.h"

#ifdef __AVX512BF16__
#include <immintrin.h>
#endif

namespace lathe::detail {
namespace {

std::atomic<int> bf16_holds{0};

}  // namespace

bool bf16_products_supported() {
#ifdef __AVX512BF16__
  return __builtin_cpu_supports("avx512bf16");
#else
  return false;
#endif
}

BFloat16Products::BFloat16Products() {
  if (!bf16_products_supported())
    throw Error("bf16 products need a CPU with AVX512_BF16, and a build made for one");
  ++bf16_holds;
}
BFloat16Products::~BFloat16Products() {
  --bf16_holds;
}
bool bf16_products_enabled() {
  return bf16_holds.load(std::memory_order_relaxed) > 0;
}

float round_to_bf16(float x) {
  std::uint32_t bits = std::bit_cast<std::uint32_t>(x);
  if ((bits & 0x7fffffffu) > 0x7f800000u)
    return std::bit_cast<float>((bits | 0x00400000u) & 0xffff0000u);
  bits += 0x7fffu + ((bits >> 16) & 1u);  // to nearest, ties to even
  return std::bit_cast<float>(bits & 0xffff0000u);
}

#ifdef __AVX512BF16__
// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*, which -Wmaybe-uninitialized reports
// once they are inlined (pushed and popped: unity builds share this file's pragmas).
#pragma GCC diagnostic push
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace {

constexpr std::int64_t kLanes = 16;  // float32 sums per vector; columns per panel of B
constexpr std::int64_t kTileRows = 6;
constexpr std::int64_t kTileVectors = 4;

// Each pool thread packs into its own buffers, reused across products.
thread_local std::vector<std::uint16_t> packed_a, packed_b;

__mmask16 first_lanes(std::int64_t count) {
  return count >= kLanes ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1);
}

// 16 floats (the first `count`) of a row, rounded to bf16.
__m256i row_to_bf16(const float* x, std::int64_t count) {
  return reinterpret_cast<__m256i>(
      _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(first_lanes(count), x)));
}

// One row of `count` values as bf16 pairs: word q holds values 2q (low half) and 2q + 1.
void row_to_pairs(const float* x, std::int64_t count, std::uint32_t* words) {
  std::int64_t t = 0;
  for (; t < count; t += 2 * kLanes) {
    const std::int64_t left = count - t;
    const __m512 low = _mm512_maskz_loadu_ps(first_lanes(left), x + t);
    const __m512 high = left > kLanes
                            ? _mm512_maskz_loadu_ps(first_lanes(left - kLanes), x + t + kLanes)
                            : _mm512_setzero_ps();
    const __m512i pairs = reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(high, low));
    const std::int64_t words_here = std::min<std::int64_t>(kLanes, (left + 1) / 2);
    _mm512_mask_storeu_epi32(words + t / 2, first_lanes(words_here), pairs);
  }
}

// Rows r0 and r1 (r1 may be null: zeros) of `count` values interleaved as bf16 pairs: word i
// holds (r0[i], r1[i]).
void interleave_rows(const float* r0, const float* r1, std::int64_t count, std::uint32_t* words) {
  for (std::int64_t i = 0; i < count; i += kLanes) {
    const std::int64_t here = std::min(kLanes, count - i);
    const __m256i h0 = row_to_bf16(r0 + i, here);
    const __m256i h1 = r1 ? row_to_bf16(r1 + i, here) : _mm256_setzero_si256();
    const __m256i lo = _mm256_unpacklo_epi16(h0, h1), hi = _mm256_unpackhi_epi16(h0, h1);
    const __m512i both =
        _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_permute2x128_si256(lo, hi, 0x20)),
                           _mm256_permute2x128_si256(lo, hi, 0x31), 1);
    _mm512_mask_storeu_epi32(words + i, first_lanes(here), both);
  }
}

// B (k x n as op(B)) into panels of 16 columns: panel p, pair q, column c at word
// (p * pairs + q) * 16 + c; columns beyond n are zeros.
void pack_b(bool tb, std::int64_t n, std::int64_t k, const float* b, std::int64_t ldb,
            std::uint32_t* out) {
  const std::int64_t pairs = (k + 1) / 2, panels = (n + kLanes - 1) / kLanes;
  if (pairs == 0) return;  // an empty summed axis: nothing to pack (and `out` may be null)
  std::memset(out, 0, static_cast<std::size_t>(panels * pairs * kLanes) * sizeof(std::uint32_t));
  if (!tb) {  // row t of op(B) is b + t * ldb
    for (std::int64_t p = 0; p < panels; ++p) {
      const std::int64_t j0 = p * kLanes, columns = std::min(kLanes, n - j0);
      for (std::int64_t q = 0; q < pairs; ++q)
        interleave_rows(b + 2 * q * ldb + j0, 2 * q + 1 < k ? b + (2 * q + 1) * ldb + j0 : nullptr,
                        columns, out + (p * pairs + q) * kLanes);
    }
    return;
  }
  // Column j of op(B) is row j of the stored b: its pairs are consecutive words.
  static thread_local std::vector<std::uint32_t> column;
  column.resize(static_cast<std::size_t>(pairs));
  for (std::int64_t j = 0; j < n; ++j) {
    row_to_pairs(b + j * ldb, k, column.data());
    std::uint32_t* panel = out + (j / kLanes) * pairs * kLanes + j % kLanes;
    for (std::int64_t q = 0; q < pairs; ++q) panel[q * kLanes] = column[q];
  }
}

// A (m x k as op(A)) as pair words; word (r, q) at r * row_stride + q * pair_stride.
struct PackedA {
  const std::uint32_t* words;
  std::int64_t row_stride, pair_stride;
};

PackedA pack_a(bool ta, std::int64_t m, std::int64_t k, const float* a, std::int64_t lda,
               std::uint32_t* out) {
  const std::int64_t pairs = (k + 1) / 2;
  if (!ta) {  // rows of op(A) are stored rows: each becomes its own run of words
    for (std::int64_t r = 0; r < m; ++r) row_to_pairs(a + r * lda, k, out + r * pairs);
    return {out, pairs, 1};
  }
  // op(A) = a^T: stored rows 2q and 2q + 1 interleave into pair q of every row.
  for (std::int64_t q = 0; q < pairs; ++q)
    interleave_rows(a + 2 * q * lda, 2 * q + 1 < k ? a + (2 * q + 1) * lda : nullptr, m,
                    out + q * m);
  return {out, 1, m};
}

template <std::int64_t R, std::int64_t V>
void tile(std::int64_t pairs, const PackedA& a, std::int64_t row, const std::uint32_t* b,
          std::int64_t columns, float alpha, float beta, float* c, std::int64_t ldc) {
  __m512 acc[R][V];
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  const std::uint32_t* a_row = a.words + row * a.row_stride;
  for (std::int64_t q = 0; q < pairs; ++q) {
    __m512bh bv[V];
    for (std::int64_t v = 0; v < V; ++v)
      bv[v] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(b + (v * pairs + q) * kLanes));
    for (std::int64_t r = 0; r < R; ++r) {
      const auto word = static_cast<int>(a_row[r * a.row_stride + q * a.pair_stride]);
      const __m512bh av = reinterpret_cast<__m512bh>(_mm512_set1_epi32(word));
      for (std::int64_t v = 0; v < V; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
    }
  }
  const __m512 alphas = _mm512_set1_ps(alpha), betas = _mm512_set1_ps(beta);
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v) {
      const __mmask16 lanes = first_lanes(columns - v * kLanes);
      float* out = c + r * ldc + v * kLanes;
      __m512 value = _mm512_mul_ps(acc[r][v], alphas);
      if (beta != 0) value = _mm512_fmadd_ps(betas, _mm512_maskz_loadu_ps(lanes, out), value);
      _mm512_mask_storeu_ps(out, lanes, value);
    }
}

// Every row of C for one block of V panels.
template <std::int64_t V>
void column_block(std::int64_t m, std::int64_t pairs, const PackedA& a, const std::uint32_t* b,
                  std::int64_t columns, float alpha, float beta, float* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + kTileRows <= m; i += kTileRows)
    tile<kTileRows, V>(pairs, a, i, b, columns, alpha, beta, c + i * ldc, ldc);
  const auto rest = [&]<std::int64_t... R>(std::integer_sequence<std::int64_t, R...>) {
    ((m - i == R + 1 ? tile<R + 1, V>(pairs, a, i, b, columns, alpha, beta, c + i * ldc, ldc)
                     : void()),
     ...);
  };
  rest(std::make_integer_sequence<std::int64_t, kTileRows - 1>{});
}

}  // namespace

bool gemm_bf16(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
               float* c, std::int64_t ldc) {
  if (!bf16_products_supported()) return false;
  if (m == 0 || n == 0) return true;
  const std::int64_t pairs = (k + 1) / 2, panels = (n + kLanes - 1) / kLanes;
  packed_b.resize(static_cast<std::size_t>(panels * pairs * kLanes * 2));
  packed_a.resize(static_cast<std::size_t>(m * pairs * 2));
  auto* b_words = reinterpret_cast<std::uint32_t*>(packed_b.data());
  pack_b(tb, n, k, b, ldb, b_words);
  const PackedA packed =
      pack_a(ta, m, k, a, lda, reinterpret_cast<std::uint32_t*>(packed_a.data()));
  for (std::int64_t p = 0; p < panels; p += kTileVectors) {
    const std::int64_t j0 = p * kLanes, columns = std::min(kTileVectors * kLanes, n - j0);
    const std::uint32_t* block = b_words + p * pairs * kLanes;
    switch ((columns + kLanes - 1) / kLanes) {
      case 4:
        column_block<4>(m, pairs, packed, block, columns, alpha, beta, c + j0, ldc);
        break;
      case 3:
        column_block<3>(m, pairs, packed, block, columns, alpha, beta, c + j0, ldc);
        break;
      case 2:
        column_block<2>(m, pairs, packed, block, columns, alpha, beta, c + j0, ldc);
        break;
      default:
        column_block<1>(m, pairs, packed, block, columns, alpha, beta, c + j0, ldc);
        break;
    }
  }
  return true;
}
#pragma GCC diagnostic pop

#else

bool gemm_bf16(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
               std::int64_t, const float*, std::int64_t, float, float*, std::int64_t) {
  return false;
}

#endif

}  // namespace lathe::detail
