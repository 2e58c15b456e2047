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
}  // namespace

template <>
void gemm<float>(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
                 const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
                 float* c, std::int64_t ldc) {
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
