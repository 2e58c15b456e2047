// The one place lathe calls BLAS. A product with enough work is split into blocks of its summed
// axis (when that axis dwarfs the output), row blocks or, with too few rows, column blocks over
// lathe's pool, each with single-threaded OpenBLAS; a smaller one runs on the calling thread with
// single-threaded OpenBLAS; a one-row product is a matrix-vector product on the calling thread.
// OpenBLAS's own threads only get products too narrow to split. Products with a narrow output
// (a linear layer stored [in, out]: its forward x W and weight gradient x^T g) go to lathe's own
// kernels instead of OpenBLAS (src/tensor/gemm_narrow.h).
//
// Measured (docs/PERFORMANCE.md): the seed MLP's 64x128x784 products, 3.2M multiply-adds per
// part, run at 150-190 GFLOP/s split against 95-100 on one thread; and OpenBLAS's workers,
// woken for small products, then spin in sched_yield and take the core the pool needs (the wide
// MLP's 60 steps 0.99-1.07 s with them, 0.87-0.92 s without).
#include "src/tensor/blas.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <mutex>
#include <vector>

#include "lathe/error.h"
#include "lathe/parallel.h"
#include "src/tensor/gemm_bf16.h"
#include "src/tensor/gemm_narrow.h"

namespace lathe::detail {
namespace {

// Work that repays handing a part to another thread: 2^20 multiply-adds are 15-20 us on one core
// with the AVX-512 kernels, and up to 50 us for a product with a side of 10 (a classifier's
// last layer), several times the hand-off to a pool thread that is still watching for work; parts
// of fewer than 64 rows or columns pack inefficiently. Measured on the wide MLP (batch 256, 10
// classes): its three products with a side of 10 took 120-130 us each on one core, 64-74 split;
// at 2^21 they were not split.
constexpr std::int64_t kConcurrentMacs = std::int64_t{1} << 20;
// Two whole products side by side need no packing of shared parts: the hand-off to a watching
// pool thread repays itself from 2^18 multiply-adds each (~5 us on one core). Measured on the
// seed MLP, whose second layer's two gradient products are 2^19 each: epoch 0.310-0.325 s at
// 2^21, 0.300-0.310 s at 2^18 (5 alternating pairs).
constexpr std::int64_t kSideBySideMacs = std::int64_t{1} << 18;
constexpr std::int64_t kRowsPerPart = 64;
constexpr std::int64_t kColumnsPerPart = 64;
// A product whose summed axis dwarfs its output is split along that axis (see summed_axis_split):
// parts of at least this many terms, into partial products of at most kMaxPartial elements each.
constexpr std::int64_t kSummedPerPart = 128;
constexpr std::int64_t kMaxPartial = std::int64_t{1} << 15;

int blas_int(std::int64_t value) {
  if (value > INT_MAX)
    throw Error(fmt::format("matmul: dimension {} exceeds the BLAS limit {}", value, INT_MAX));
  return static_cast<int>(value);
}

CBLAS_TRANSPOSE flag(bool transpose) {
  return transpose ? CblasTrans : CblasNoTrans;
}

// own_kernels false: OpenBLAS even where lathe's single-threaded kernels apply, for a product
// that runs on OpenBLAS's own threads.
void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha,
               const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float beta,
               float* c, std::int64_t ldc, bool own_kernels = true) {
  // Mixed-precision training: every float32 product from bf16-rounded operands.
  if (bf16_products_enabled() && gemm_bf16(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc))
    return;
  // A narrow output (a linear layer stored [in, out]: the weight gradient x^T g at a small batch,
  // the forward x W): lathe's own kernels where they apply, since OpenBLAS's packing dominates.
  if (own_kernels && ta && !tb && alpha == 1 && beta == 0 &&
      gemm_at_b_short_k(m, n, k, a, lda, b, ldb, c, ldc))
    return;
  if (own_kernels && !ta && !tb && alpha == 1 && (beta == 0 || beta == 1) &&
      gemm_a_b_narrow(m, n, k, a, lda, b, ldb, beta == 1, c, ldc))
    return;
  cblas_sgemm(CblasRowMajor, flag(ta), flag(tb), blas_int(m), blas_int(n), blas_int(k), alpha, a,
              blas_int(lda), b, blas_int(ldb), beta, c, blas_int(ldc));
}

void blas_gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha,
               const double* a, std::int64_t lda, const double* b, std::int64_t ldb, double beta,
               double* c, std::int64_t ldc, bool = true) {
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

// C = alpha op(A) op(B) + beta C as `parts` products over consecutive blocks of the summed axis,
// one per pool thread: the first into C, the others into partial products that the caller adds
// to C after the join. For products whose output is small beside their operands (k >= 2 (m + n)),
// such as the seed MLP's first layer x W with W stored [in, out] (64 x 784 by 784 x 128): each
// thread reads only its block of both operands, and with W stored [in, out] on a pool of two its
// block is the half of W's rows that the same thread updated in Adam's split of the parameter
// (the pool's caller always takes the first part of both). Splitting W's output columns instead
// would give each thread a strip of every row, and two cores writing interleaved strips of one
// array measured 3.5x slower than each writing its own half on the Intel Xeon
// (docs/PERFORMANCE.md).
template <class T>
void summed_axis_split(std::int64_t parts, bool ta, bool tb, std::int64_t m, std::int64_t n,
                       std::int64_t k, T alpha, const T* a, std::int64_t lda, const T* b,
                       std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  static thread_local std::vector<T> partials;  // the caller's; reused, so a step allocates none
  partials.resize(static_cast<std::size_t>((parts - 1) * m * n));
  T* partial = partials.data();
  const std::int64_t step = (k + parts - 1) / parts;
  SingleThreadedBlas blas_on_each_pool_thread;
  parallel_for(parts, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t part = begin; part < end; ++part) {
      const std::int64_t first = part * step, count = std::min(k, first + step) - first;
      const T* a_part = ta ? a + first * lda : a + first;
      const T* b_part = tb ? b + first : b + first * ldb;
      if (part == 0)
        blas_gemm(ta, tb, m, n, count, alpha, a_part, lda, b_part, ldb, beta, c, ldc);
      else if (count > 0)
        blas_gemm(ta, tb, m, n, count, alpha, a_part, lda, b_part, ldb, T(0),
                  partial + (part - 1) * m * n, n);
      else
        std::fill_n(partial + (part - 1) * m * n, m * n, T(0));
    }
  });
  for (std::int64_t part = 1; part < parts; ++part) {
    const T* p = partial + (part - 1) * m * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) c[i * ldc + j] += p[i * n + j];
  }
}

}  // namespace

namespace {

// Before main, so that every BLAS call, lathe's or its users', runs the chosen kernels.
[[maybe_unused]] const BlasKernels& kernels_chosen_at_start = blas_kernels();

// OpenBLAS's thread count is one setting for the whole process, so the holds of every thread
// share one count: the first hold sets OpenBLAS to one thread, the last restores the count that
// set_blas_threads() asked for. Holds that each saved and restored the setting themselves let
// one thread's restore end another's hold early (two serving batchers, say).
struct BlasThreadSetting {
  std::mutex mutex;
  int holds = 0;
  int outside_holds = 0;  // the count while no hold is live; valid while holds > 0
};

BlasThreadSetting& blas_thread_setting() {
  static BlasThreadSetting setting;
  return setting;
}

}  // namespace

SingleThreadedBlas::SingleThreadedBlas() {
  BlasThreadSetting& s = blas_thread_setting();
  std::lock_guard lock(s.mutex);
  if (s.holds++ > 0) return;
  s.outside_holds = openblas_get_num_threads();
  if (s.outside_holds != 1) openblas_set_num_threads(1);
}

SingleThreadedBlas::~SingleThreadedBlas() {
  BlasThreadSetting& s = blas_thread_setting();
  std::lock_guard lock(s.mutex);
  if (--s.holds == 0 && s.outside_holds != 1) openblas_set_num_threads(s.outside_holds);
}

void run_products(std::int64_t macs, const std::function<void()>& first,
                  const std::function<void()>& second) {
  // Two products fill two threads; with more, each product split over all of them does better.
  if (macs < kSideBySideMacs || num_threads() != 2 || in_parallel_region()) {
    first();
    second();
    return;
  }
  SingleThreadedBlas blas_on_each_pool_thread;
  parallel_for(2, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) (i == 0 ? first : second)();
  });
}

template <class T>
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* a,
          std::int64_t lda, const T* b, std::int64_t ldb, T beta, T* c, std::int64_t ldc) {
  if (m == 1) {
    SingleThreadedBlas one_thread;
    blas_row(ta, tb, n, k, alpha, a, lda, b, ldb, beta, c);
    return;
  }
  // Split over the pool, each part with single-threaded BLAS. Measured on the GPT step (GEMMs of
  // 768 rows): 34-35 ms against 42-48 ms with OpenBLAS's threads.
  const std::int64_t parts = num_threads();
  const bool large = parts > 1 && !in_parallel_region() && m * n * k >= kConcurrentMacs * parts;
  const std::int64_t summed_parts = std::min(parts, k / kSummedPerPart);
  if (large && summed_parts > 1 && k >= 2 * (m + n) && m * n <= kMaxPartial)
    return summed_axis_split(summed_parts, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  // x W^T with more output columns than rows (a wide layer's forward) splits W's rows: each
  // core reads only the half of the weights that it updated in Adam's split of the same rows.
  const bool columns_first = tb && n > m && n >= kColumnsPerPart * parts;
  const bool by_rows = m >= kRowsPerPart * parts && !columns_first;
  if (large && (by_rows || n >= kColumnsPerPart * parts)) {
    const std::int64_t extent = by_rows ? m : n, step = (extent + parts - 1) / parts;
    SingleThreadedBlas blas_on_each_pool_thread;
    parallel_for(parts, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t part = begin; part < end; ++part) {
        const std::int64_t first = part * step, count = std::min(extent, first + step) - first;
        if (count <= 0) continue;
        if (by_rows)
          blas_gemm(ta, tb, count, n, k, alpha, ta ? a + first : a + first * lda, lda, b, ldb, beta,
                    c + first * ldc, ldc);
        else
          blas_gemm(ta, tb, m, count, k, alpha, a, lda, tb ? b + first * ldb : b + first, ldb, beta,
                    c + first, ldc);
      }
    });
    return;
  }
  if (large)
    return blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, /*own_kernels=*/false);
  SingleThreadedBlas one_thread;
  blas_gemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template void gemm<float>(bool, bool, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t);
template void gemm<double>(bool, bool, std::int64_t, std::int64_t, std::int64_t, double,
                           const double*, std::int64_t, const double*, std::int64_t, double,
                           double*, std::int64_t);

std::string blas_description() {
  const BlasKernels& kernels = blas_kernels();
  std::string why;
  if (!kernels.chosen_by_lathe.empty())
    why = fmt::format("; {}, so lathe runs its {} kernels", kernels.chosen_by_lathe, kernels.core);
  return fmt::format("{} ({} threads{})", openblas_get_config(), blas_threads(), why);
}

int blas_threads() {
  BlasThreadSetting& s = blas_thread_setting();
  std::lock_guard lock(s.mutex);
  return s.holds > 0 ? s.outside_holds : openblas_get_num_threads();
}

void set_blas_threads(int threads) {
  if (threads < 1) throw Error(fmt::format("BLAS threads must be at least 1, got {}", threads));
  BlasThreadSetting& s = blas_thread_setting();
  std::lock_guard lock(s.mutex);
  if (s.holds > 0)
    s.outside_holds = threads;  // applied when the last hold ends
  else
    openblas_set_num_threads(threads);
}

}  // namespace lathe::detail
