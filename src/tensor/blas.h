#pragma once
// Internal: the one place lathe calls BLAS. Row-major GEMM, C = alpha * op(A) op(B) + beta * C.
#include <cstdint>
#include <string>

namespace lathe::detail {

template <class T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
          std::int64_t ldc);

std::string blas_description();

void set_blas_threads(int threads);  // OpenBLAS's thread count for the whole process  // e.g.
                                     // "OpenBLAS 0.3.21 (Haswell, 2 threads)"

}  // namespace lathe::detail
