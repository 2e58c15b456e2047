#pragma once
// Internal: C = A^T B for a short summed axis, the weight gradient x^T g of a linear layer stored
// [in, out] at a small batch, without OpenBLAS's packing (src/tensor/gemm_short_k.cpp).
#include <cstdint>

namespace lathe::detail {

// C [m, n] = A^T B with A stored [k, m] and B [k, n] (row-major, leading dimensions lda, ldb,
// ldc), overwriting C. Returns false, doing nothing, where the kernel does not apply: a build
// without AVX-512, n not a multiple of 16 or above 128, or k above 128 (where a 64-column block
// of B, read once per tile of 6 rows, would no longer fit in L1).
bool gemm_at_b_short_k(std::int64_t m, std::int64_t n, std::int64_t k, const float* a,
                       std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                       std::int64_t ldc);

}  // namespace lathe::detail
