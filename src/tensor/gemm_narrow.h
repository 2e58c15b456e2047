#pragma once
// Internal: products with a narrow output (at most 128 columns, a multiple of 16) and a summed axis
// short enough for OpenBLAS's packing to dominate: a linear layer stored [in, out] at a small batch
// (src/tensor/gemm_narrow.cpp). Each returns false, doing nothing, where it does not apply: a build
// without AVX-512, n not a multiple of 16 or above 128, or k out of its range.
#include <cstdint>

namespace lathe::detail {

// C [m, n] = A^T B with A stored [k, m] and B [k, n] (row-major, leading dimensions lda, ldb,
// ldc), overwriting C: the weight gradient x^T g. k at most 128, where a 64-column block of B,
// read once per tile of 6 rows, still fits in L1.
bool gemm_at_b_short_k(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                       std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                       std::int64_t ldc);

// C [m, n] = A B + (add_to_c ? C : 0) with A stored [m, k] and B [k, n]: the forward x W (C
// holding the bias rows when add_to_c). k at most 1024, where a 64-column block of B, read once
// per tile of 6 rows, still fits in L2.
bool gemm_a_b_narrow(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                     std::int64_t lda, const float* b, std::int64_t ldb, bool add_to_c, float* c,
                     std::int64_t ldc);

}  // namespace lathe::detail
