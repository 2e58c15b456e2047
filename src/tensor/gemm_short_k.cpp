// A^T B for a short summed axis; see gemm_short_k.h.
//
// OpenBLAS packs both operands and clears C before a product, which at k = 64 is a large part of
// the work: through OpenBLAS the seed MLP's first-layer weight gradient (784 x 128 from 64 rows,
// one 392-row half per core) ran at about 60% of the peak in the training step. Here each tile of
// C, 6 rows by 64 columns, is held in registers while the summed axis is walked once: per step of
// it, 4 vectors of B's row (B, 64 x 128 floats, stays in L1) against 6 broadcasts of A's values,
// and C is written once at the end.
#include "src/tensor/gemm_short_k.h"

#ifdef __AVX512F__
#include <immintrin.h>

#include <utility>
#endif

namespace lathe::detail {

#ifdef __AVX512F__
namespace {

constexpr std::int64_t kLanes = 16;
constexpr std::int64_t kMaxColumns = 128;
constexpr std::int64_t kMaxK = 128;
// A tile of 6 rows by 4 vectors: 24 accumulators, 4 vectors of B's row and a broadcast in the
// 32 registers; per step of the summed axis 10 loads for 24 multiply-adds.
constexpr std::int64_t kRows = 6;
constexpr std::int64_t kVectors = 4;

template <std::int64_t R, std::int64_t V>
void tile(std::int64_t k, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
          float* c, std::int64_t ldc) {
  __m512 acc[R][V];
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v) acc[r][v] = _mm512_setzero_ps();
  for (std::int64_t q = 0; q < k; ++q) {
    __m512 row[V];
    for (std::int64_t v = 0; v < V; ++v) row[v] = _mm512_loadu_ps(b + q * ldb + v * kLanes);
    for (std::int64_t r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[q * lda + r]);
      for (std::int64_t v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(x, row[v], acc[r][v]);
    }
  }
  for (std::int64_t r = 0; r < R; ++r)
    for (std::int64_t v = 0; v < V; ++v) _mm512_storeu_ps(c + r * ldc + v * kLanes, acc[r][v]);
}

// All rows of C for one block of V vectors of columns.
template <std::int64_t V>
void column_block(std::int64_t m, std::int64_t k, const float* a, std::int64_t lda, const float* b,
                  std::int64_t ldb, float* c, std::int64_t ldc) {
  std::int64_t i = 0;
  for (; i + kRows <= m; i += kRows) tile<kRows, V>(k, a + i, lda, b, ldb, c + i * ldc, ldc);
  const auto rest = [&]<std::int64_t... R>(std::integer_sequence<std::int64_t, R...>) {
    ((m - i == R + 1 ? tile<R + 1, V>(k, a + i, lda, b, ldb, c + i * ldc, ldc) : void()), ...);
  };
  rest(std::make_integer_sequence<std::int64_t, kRows - 1>{});
}

}  // namespace

bool gemm_at_b_short_k(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                       std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                       std::int64_t ldc) {
  if (n % kLanes != 0 || n > kMaxColumns || n == 0 || k > kMaxK || k < 1) return false;
  std::int64_t j = 0;
  for (; j + kVectors * kLanes <= n; j += kVectors * kLanes)
    column_block<kVectors>(m, k, a, lda, b + j, ldb, c + j, ldc);
  switch ((n - j) / kLanes) {
    case 3:
      column_block<3>(m, k, a, lda, b + j, ldb, c + j, ldc);
      break;
    case 2:
      column_block<2>(m, k, a, lda, b + j, ldb, c + j, ldc);
      break;
    case 1:
      column_block<1>(m, k, a, lda, b + j, ldb, c + j, ldc);
      break;
    default:
      break;
  }
  return true;
}

#else

bool gemm_at_b_short_k(std::int64_t, std::int64_t, std::int64_t, const float*, std::int64_t,
                       const float*, std::int64_t, float*, std::int64_t) {
  return false;
}

#endif

}  // namespace lathe::detail
