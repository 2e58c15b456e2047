// The one place lathe calls BLAS. Matrix products use OpenBLAS with its own threads; a
// one-row product is a matrix-vector product on the calling thread.
//
// Tried and measured (see docs/PERFORMANCE.md): splitting GEMMs over lathe's pool with OpenBLAS
// single-threaded gained little on the seed MLP (0.49 -> 0.46 s/epoch) and made 64x784x128
// unstable against OpenBLAS's own threads (0.64-1.25 of sgemm's rate), so it was dropped.
#include "src/tensor/blas.h"

#include <cblas.h>
#include <fmt/format.h>

#include <climits>

#include "lathe/error.h"
#include "lathe/parallel.h"

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

SingleThreadedBlas::SingleThreadedBlas() : previous_(openblas_get_num_threads()) {
  if (previous_ != 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  if (previous_ != 1) openblas_set_num_threads(previous_);
}

template <class T>
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 1) {
    SingleThreadedBlas one_thread;
    blas_row(ta, tb, n, k, alpha, a, lda, b, ldb, beta, c);
    return;
  }
  blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double,
                           double*, std::int64_t);

void run_products(std::int64_t macs, const std::function<void()>& first,
                  const std::function<void()>& second) {
  // 2^22 multiply-adds: ~80 us on one core here, several times a wake-up's cost.
  constexpr std::int64_t kConcurrentMacs = std::int64_t{1} << 22;
  if (macs < kConcurrentMacs || num_threads() < 2) {
    first();
    second();
    return;
  }
  SingleThreadedBlas blas_on_each_pool_thread;
  parallel_for(2, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) (i == 0 ? first : second)();
  });
}

std::string blas_description() {
  return fmt::format("{} ({} threads)", openblas_get_config(), openblas_get_num_threads());
}

void set_blas_threads(int threads) {
  openblas_set_num_threads(threads);
}

}  // namespace lathe::detail
