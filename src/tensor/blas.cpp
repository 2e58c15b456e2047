// The one place lathe calls BLAS. OpenBLAS runs single-threaded here: lathe splits large
// products over its own pool, whose idle threads sleep, instead of OpenBLAS's threads, which
// spin and yield between calls and so steal the core the training thread needs on small
// machines (measured: sched_yield and wake-ups were a third of a seed MLP epoch's profile).
#include "src/tensor/blas.h"

#include <cblas.h>
#include <fmt/format.h>

#include <climits>

#include "lathe/error.h"
#include "lathe/parallel.h"

namespace lathe::detail {
namespace {

// Below this many multiply-adds a product runs on the calling thread alone.
constexpr double kSerialWork = 1 << 18;

int blas_int(std::int64_t value) {
  if (value > INT_MAX)
    throw Error(fmt::format("matmul: dimension {} exceeds the BLAS limit {}", value, INT_MAX));
  return static_cast<int>(value);
}

CBLAS_TRANSPOSE flag(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

// Keeps OpenBLAS on the calling thread for the duration of one lathe product, then restores
// whatever thread count the process had (so code calling OpenBLAS directly is unaffected).
class SingleThreadedBlas {
 public:
  SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
    if (previous_ != 1) openblas_set_num_threads(1);
  }
  ~SingleThreadedBlas() {
    if (previous_ != 1) openblas_set_num_threads(previous_);
  }
  SingleThreadedBlas(const SingleThreadedBlas&) = delete;
  SingleThreadedBlas& operator=(const SingleThreadedBlas&) = delete;

 private:
  int previous_;
};

void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
               float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), blas_int(m), blas_int(n), blas_int(k), alpha, a,
              blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
               const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
               double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), blas_int(m), blas_int(n), blas_int(k), alpha, a,
              blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

// One output row as a matrix-vector product: B stored [N,K] (tb) gives B a, else B^T a.
// GEMV skips the packing of B that dominates GEMMs this small.
void blas_row(bool ta, bool tb, std::int64_t n, std::int64_t k, float alpha, const float* a,
              std::int64_t lda, const float* b, std::int64_t ldb, float beta, float* c) {
  cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, blas_int(tb ? n : k),
              blas_int(tb ? k : n), alpha, b, blas_int(ldb), a, blas_int(ta ? lda : 1), beta, c, 1);
}

void blas_row(bool ta, bool tb, std::int64_t n, std::int64_t k, double alpha, const double* a,
              std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c) {
  cblas_dgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, blas_int(tb ? n : k),
              blas_int(tb ? k : n), alpha, b, blas_int(ldb), a, blas_int(ta ? lda : 1), beta, c, 1);
}

}  // namespace

template <class T>
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  SingleThreadedBlas one_thread;
  if (m == 1) {  // one thread: splitting a product this small costs more than it saves (measured)
    blas_row(ta, tb, n, k, alpha, a, lda, b, ldb, beta, c);
    return;
  }
  // Split the longer side of C into one block per thread; each block is an ordinary GEMM on
  // sub-matrices (a row block of op(A) or a column block of op(B)).
  const bool by_rows = m >= n;
  const std::int64_t extent = by_rows ? m : n;
  const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  const std::int64_t grain =
      work < kSerialWork ? extent
                         : std::max<std::int64_t>(8, (extent + num_threads() - 1) / num_threads());
  parallel_for(extent, grain, [&](std::int64_t begin, std::int64_t end) {
    if (by_rows) {
      blas_gemm(ta, tb, end - begin, n, k, alpha, ta ? a + begin : a + begin * lda, lda, b, ldb,
                beta, c + begin * ldc, ldc);
    } else {
      blas_gemm(ta, tb, m, end - begin, k, alpha, a, lda, tb ? b + begin * ldb : b + begin, ldb,
                beta, c + begin, ldc);
    }
  });
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double,
                           double*, std::int64_t);

std::string blas_description() {
  return fmt::format("{} (lathe splits products over {} threads; OpenBLAS runs each part on one)",
                     openblas_get_config(), num_threads());
}

}  // namespace lathe::detail
