// Products with a narrow output over a short summed axis; see gemm_narrow.h.
//
// OpenBLAS packs both operands and clears C before a product, which at these sizes is a large part
// of the work: through OpenBLAS the seed MLP's first-layer weight gradient (784 x 128 from 64 rows,
// one 392-row half per core) ran at about 60% of the peak in the training step. Here each tile of
// C, 6 rows by 64 columns, is held in registers while the summed axis is walked once: per step of
// it, 4 vectors of B's row against 6 broadcasts of A's values, and C is written once at the end.
// A is read in place, down a column (A^T B) or along a row (A B).
#include "src/tensor/gemm_narrow.h"

#ifdef __AVX512F__
#include <immintrin.h>

#include <utility>
#endif

namespace lathe::detail {

#ifdef __AVX512F__
namespace {

constexpr std::int64_t kNarrowLanes = 16;
constexpr std::int64_t kMaxColumns = 128;
constexpr std::int64_t kMaxShortK = 128;
constexpr std::int64_t kMaxNarrowK = 1024;
// A tile of 6 rows by 4 vectors: 24 accumulators, 4 vectors of B's row and a broadcast in the
// 32 registers; per step of the summed axis 10 loads for 24 multiply-adds.
constexpr std::int64_t kRows = 6;
constexpr std::int64_t kVectors = 4;

// Where A's value for row r of C and step q of the summed axis lies.
template <bool kTransposedA>
const float* a_at(const float* a, std::int64_t lda, std::int64_t r, std::int64_t q) {
  return kTransposedA ? a + q * lda + r : a + r * lda + q;
}

template <bool kTransposedA, std::int64_t R, std::int64_t V>
void tile(std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          bool add_to_c, float* c, std::int64_t ldc) {
  __m512 acc[R][V];
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v)
      acc[r][v] = add_to_c ? _mm512_loadu_ps(c + r * ldc + v * kNarrowLanes) : _mm512_setzero_ps();
  for (std::int64_t q = 0; q < k; ++q) {
    __m512 row[V];
    for (std::int64_t v = 0; v < V; ++v) row[v] = _mm512_loadu_ps(b + q * ldb + v * kNarrowLanes);
    for (std::int64_t r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(*a_at<kTransposedA>(a, lda, r, q));
      for (std::int64_t v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, row[v], acc[r][v]);
    }
  }
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v)
      _mm512_storeu_ps(c + r * ldc + v * kNarrowLanes, acc[r][v]);
}

// All rows of C for one block of V vectors of columns.
template <bool kTransposedA, std::int64_t V>
void column_block(std::int64_t m, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                  std::int64_t ldb, bool add_to_c, float* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + kRows <= m; i += kRows)
    tile<kTransposedA, kRows, V>(k, a_at<kTransposedA>(a, lda, i, 0), lda, b, ldb, add_to_c,
                                 c + i * ldc, ldc);
  const auto rest = [&]<std::int64_t... R>(std::integer_sequence<std::int64_t, R...>) {
    ((m - i == R + 1 ? tile<kTransposedA, R + 1, V>(k, a_at<kTransposedA>(a, lda, i, 0), lda, b,
                                                    ldb, add_to_c, c + i * ldc, ldc)
                     : void()),
     ...);
  };
  rest(std::make_integer_sequence<std::int64_t, kRows - 1>{});
}

template <bool kTransposedA>
void narrow_product(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                    std::int64_t lda, const float* b, std::int64_t ldb, bool add_to_c, float* c,
                    std::int64_t ldc) {
  std::int64_t j = 0;
  for (; j + kVectors * kNarrowLanes <= n; j += kVectors * kNarrowLanes)
    column_block<kTransposedA, kVectors>(m, k, a, lda, b + j, ldb, add_to_c, c + j, ldc);
  switch ((n - j) / kNarrowLanes) {
    case 3:
      column_block<kTransposedA, 3>(m, k, a, lda, b + j, ldb, add_to_c, c + j, ldc);
      break;
    case 2:
      column_block<kTransposedA, 2>(m, k, a, lda, b + j, ldb, add_to_c, c + j, ldc);
      break;
    case 1:
      column_block<kTransposedA, 1>(m, k, a, lda, b + j, ldb, add_to_c, c + j, ldc);
      break;
    default:
      break;
  }
}

bool narrow(std::int64_t n) {
  return n % kNarrowLanes == 0 && n > 0 && n <= kMaxColumns;
}

}  // namespace

bool gemm_at_b_short_k(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                       std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                       std::int64_t ldc) {
  if (!narrow(n) || k > kMaxShortK || k < 1) return false;
  narrow_product<true>(m, n, k, a, lda, b, ldb, false, c, ldc);
  return true;
}

bool gemm_a_b_narrow(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                     std::int64_t lda, const float* b, std::int64_t ldb, bool add_to_c, float* c,
                     std::int64_t ldc) {
  if (!narrow(n) || k > kMaxNarrowK || k < 1) return false;
  narrow_product<false>(m, n, k, a, lda, b, ldb, add_to_c, c, ldc);
  return true;
}

#else

bool gemm_at_b_short_k(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                       const float*, std::int64_t, float*, std::int64_t) {
  return false;
}

bool gemm_a_b_narrow(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                     const float*, std::int64_t, bool, float*, std::int64_t) {
  return false;
}

#endif

}  // namespace lathe::detail
