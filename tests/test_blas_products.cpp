// Whatever kernels OpenBLAS runs here (its own choice, lathe's, or OPENBLAS_CORETYPE's), the
// products lathe asks of it agree with a wider-precision reference: every transpose flag, alpha
// and beta, padded leading dimensions, sizes on both sides of the kernels' block edges, products
// split over the pool (by rows, columns or the summed axis) or handed to OpenBLAS's threads, and
// beta = 0 over a C that holds NaN (BLAS must not read it). Kernel bugs give errors of the size of
// the result, far above the rounding bound used here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "src/tensor/blas.h"

namespace lathe::detail {
namespace {

struct Product {
  std::int64_t m, n, k;
  bool ta, tb;
  double alpha, beta;
  std::int64_t pad;  // added to every leading dimension
};

template <class T, class Wide>
void expect_matches_reference(const Product& p, std::mt19937& random) {
  const std::int64_t a_rows = p.ta ? p.k : p.m, a_cols = p.ta ? p.m : p.k;
  const std::int64_t b_rows = p.tb ? p.n : p.k, b_cols = p.tb ? p.k : p.n;
  const std::int64_t lda = a_cols + p.pad, ldb = b_cols + p.pad, ldc = p.n + p.pad;
  std::uniform_real_distribution<double> value(-1, 1);
  std::vector<T> a(a_rows * lda), b(b_rows * ldb), c(p.m * ldc);
  for (T& x : a) x = static_cast<T>(value(random));
  for (T& x : b) x = static_cast<T>(value(random));
  for (T& x : c)
    x = p.beta == 0 ? std::numeric_limits<T>::quiet_NaN() : static_cast<T>(value(random));
  const std::vector<T> c_before = c;

  gemm<T>(p.ta, p.tb, p.m, p.n, p.k, static_cast<T>(p.alpha), a.data(), lda, b.data(), ldb,
          static_cast<T>(p.beta), c.data(), ldc);

  const double unit = std::numeric_limits<T>::epsilon();
  for (std::int64_t i = 0; i < p.m; ++i)
    for (std::int64_t j = 0; j < p.n; ++j) {
      Wide sum = 0, magnitude = 0;
      for (std::int64_t q = 0; q < p.k; ++q) {
        const Wide term = Wide(p.ta ? a[q * lda + i] : a[i * lda + q]) *
                          Wide(p.tb ? b[j * ldb + q] : b[q * ldb + j]);
        sum += term;
        magnitude += std::abs(term);
      }
      Wide expected = Wide(p.alpha) * sum;
      Wide scale = std::abs(Wide(p.alpha)) * magnitude;
      if (p.beta != 0) {
        expected += Wide(p.beta) * Wide(c_before[i * ldc + j]);
        scale += std::abs(Wide(p.beta) * Wide(c_before[i * ldc + j]));
      }
      // The classic bound for a sum of k + 2 rounded terms, doubled.
      const double bound = 2.0 * double(p.k + 2) * unit * double(scale) + 1e-30;
      const T got = c[i * ldc + j];
      ASSERT_TRUE(std::isfinite(got) && std::abs(double(got) - double(expected)) <= bound)
          << p.m << "x" << p.n << "x" << p.k << " ta=" << p.ta << " tb=" << p.tb
          << " alpha=" << p.alpha << " beta=" << p.beta << " pad=" << p.pad << " at " << i << ","
          << j << ": " << got << " against " << double(expected) << " (bound " << bound << ")";
    }
  // The padding between rows is not C's to write.
  for (std::int64_t i = 0; i < p.m; ++i)
    for (std::int64_t j = p.n; j < ldc; ++j)
      ASSERT_TRUE(std::isnan(c_before[i * ldc + j]) ? std::isnan(c[i * ldc + j])
                                                    : c[i * ldc + j] == c_before[i * ldc + j]);
}

std::vector<Product> products() {
  std::vector<Product> all;
  std::mt19937 random(20261129);
  // Sizes at the edges of register and cache blocks (AVX2 and AVX-512 kernels block by 4-32).
  const std::int64_t edges[] = {1,  2,  3,  7,  8,  9,  15, 16, 17, 31,
                                32, 33, 47, 48, 49, 63, 64, 65, 97};
  const double alphas[] = {1, -1, 0.5, 2.25}, betas[] = {0, 1, -0.75};
  std::uniform_int_distribution<int> pick(0, std::size(edges) - 1);
  for (int i = 0; i < 160; ++i)
    all.push_back({edges[pick(random)], edges[pick(random)], edges[pick(random)], i % 2 == 1,
                   i / 2 % 2 == 1, alphas[i % 4], betas[i % 3], i % 5 == 0 ? 3 : 0});
  std::uniform_int_distribution<std::int64_t> size(1, 260);
  for (int i = 0; i < 40; ++i)
    all.push_back({size(random), size(random), size(random), i % 2 == 0, i / 2 % 2 == 0,
                   alphas[i % 4], betas[i % 3], i % 3 == 0 ? 5 : 0});
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      all.push_back({256, 64, 300, ta, tb, 1, 0, 0});   // split over the pool by rows
      all.push_back({160, 400, 100, ta, tb, 1, 0, 0});  // by columns when tb (a wide forward)
      all.push_back({64, 784, 128, ta, tb, 1, 1, 0});   // the seed MLP's shapes
      all.push_back({64, 128, 784, ta, tb, 1, 0, 0});
      all.push_back({128, 784, 64, ta, tb, 1, 0, 0});  // its weight gradients, at batch 64
      all.push_back({64, 128, 64, ta, tb, 1, 0, 0});
      all.push_back({10, 64, 64, ta, tb, 1, 1, 0});
      all.push_back({784, 128, 64, ta, tb, 1, 0, 0});  // x^T g for weights stored [in, out]
      all.push_back({128, 64, 64, ta, tb, 1, 0, 0});
      all.push_back({101, 48, 33, ta, tb, 1, 0, 3});   // its tiles of 6 rows by 4 vectors,
      all.push_back({100, 16, 100, ta, tb, 1, 0, 1});  // with every count of rows and of
      all.push_back({45, 32, 64, ta, tb, 1, 0, 0});    // vectors left over
      all.push_back({7, 112, 1, ta, tb, 1, 0, 0});
      all.push_back({64, 128, 784, ta, tb, 1, 1, 0});  // x W + bias rows in C, W stored [in, out]
      all.push_back({13, 64, 1000, ta, tb, 1, 1, 2});  // long summed axes, one call each
      all.push_back({5, 16, 1024, ta, tb, 1, 0, 0});
      all.push_back({5, 16, 1025, ta, tb, 1, 1, 0});
      all.push_back({40, 40, 3000, ta, tb, 1, 0.5, 2});  // split along the summed axis
      all.push_back({64, 128, 784, ta, tb, -0.5, 0.75, 3});
      all.push_back({50, 40, 1201, ta, tb, 2.25, 1, 0});  // odd k: unequal parts
      all.push_back({100, 100, 390, ta, tb, 1, 0, 0});    // too narrow to split: OpenBLAS's threads
      all.push_back({5, 9, 0, ta, tb, 1, 0, 1});          // k = 0 leaves beta * C
      all.push_back({4, 6, 0, ta, tb, 1, -0.75, 0});
    }
  return all;
}

TEST(BlasProducts, SingleAgreeWithADoubleReference) {
  std::mt19937 random(1);
  for (const Product& p : products()) expect_matches_reference<float, double>(p, random);
}

TEST(BlasProducts, DoubleAgreeWithALongDoubleReference) {
  std::mt19937 random(2);
  for (const Product& p : products()) expect_matches_reference<double, long double>(p, random);
}

}  // namespace
}  // namespace lathe::detail
