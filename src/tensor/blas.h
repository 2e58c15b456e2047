#pragma once
// Internal: the one place lathe calls BLAS. Row-major GEMM, C = alpha * op(A) op(B) + beta * C.
#include <cstdint>
#include <functional>
#include <string>

namespace lathe::detail {

template <class T>
void gemm(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
          T alpha, const T* a, std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c,
          std::int64_t ldc);

// Keeps OpenBLAS single-threaded while it lives. For products too small to repay waking
// OpenBLAS's threads: a matrix-vector product (measured: batch-1 inference 115k -> 180k
// samples/s) and the per-image GEMMs of a convolution, which run on the kernel thread pool
// instead. The setting is process-wide, so holds on several threads overlap: OpenBLAS stays
// single-threaded until the last of them ends, then gets set_blas_threads()'s count back.
class SingleThreadedBlas {
 public:
  SingleThreadedBlas();
  ~SingleThreadedBlas();
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;
};

// Runs two independent products (e.g. the input and weight gradients of a linear layer) at
// the same time, one per pool thread with single-threaded BLAS, when `macs` (multiply-adds of
// each) is large enough to repay waking a thread and the pool has exactly two threads (with
// more, each product split over all of them does better); otherwise one after the other on the
// caller, where gemm() splits each over the pool itself.
void run_products(std::int64_t macs, const std::function<void()>& first,
                  const std::function<void()>& second);

// The OpenBLAS kernels in use (openblas_get_corename()) and, where lathe chose them because
// OpenBLAS had settled for kernels older than AVX2 on a CPU with AVX2 and FMA or AVX-512, why
// (src/tensor/blas_kernels.cpp). The choice is made once, before main.
struct BlasKernels {
  std::string core;
  std::string chosen_by_lathe;  // empty: OpenBLAS's own choice
};
const BlasKernels& blas_kernels();

// e.g. "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64 (2 threads)"
std::string blas_description();

// OpenBLAS's thread count for the whole process, outside SingleThreadedBlas holds (a count set
// during a hold takes effect when the holds end).
int blas_threads();
void set_blas_threads(int threads);

}  // namespace lathe::detail
