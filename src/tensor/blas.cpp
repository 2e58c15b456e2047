#include "src/tensor/blas.h"

#include <cblas.h>
#include <fmt/format.h>

#include <climits>

#include "lathe/error.h"

namespace lathe::detail {
namespace {
int blas_int(std::int64_t value) {
  if (value > INT_MAX)
    throw Error(fmt::format("matmul: dimension {} exceeds the BLAS limit {}", value, INT_MAX));
  return static_cast<int>(value);
}
CBLAS_TRANSPOSE flag(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

// Runs one BLAS call on the calling thread only. A matrix-vector product is too small to repay
// waking OpenBLAS's threads (measured: batch-1 inference 115k -> 180k samples/s).
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

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                 float* c, std::int64_t ldc) {
  if (m == 1) {  // one row: GEMV, which skips the packing of B that dominates small GEMMs
    // With B stored [N,K] (tb) the row is B a, otherwise B^T a.
    SingleThreadedBlas one_thread;
    cblas_sgemv(CblasRowMajor, tb ? CblasNoTrans : CblasTrans, blas_int(tb ? n : k),
                blas_int(tb ? k : n), alpha, b, blas_int(ldb), a, blas_int(ta ? lda : 1), beta, c,
                1);
    return;
  }
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), blas_int(m), blas_int(n), blas_int(k), alpha, a,
              blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
                  const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
                  double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, flag(ta), flag(tb), blas_int(m), blas_int(n), blas_int(k), alpha, a,
              blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

std::string blas_description() {
  return fmt::format("{} ({} threads)", openblas_get_config(), openblas_get_num_threads());
}

}  // namespace lathe::detail
