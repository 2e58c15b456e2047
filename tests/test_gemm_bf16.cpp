// Products from bf16-rounded operands (src/tensor/gemm_bf16.cpp) against a float64 reference on
// the same rounded operands: every transpose case, sizes that leave partial tiles, partial
// vectors and an odd summed axis, alpha and beta. Skipped, saying so, on a CPU without
// AVX512_BF16.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>
#include <vector>

#include "lathe/lathe.h"
#include "src/tensor/blas.h"
#include "src/tensor/gemm_bf16.h"

namespace lathe {
namespace {

using detail::round_to_bf16;

TEST(RoundToBf16, RoundsToNearestEven) {
  EXPECT_EQ(round_to_bf16(1.0f), 1.0f);
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f), 1.0f);                // halfway: to the even 1.0
  EXPECT_EQ(round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);  // halfway: to the even 1+2^-6
  EXPECT_EQ(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // above halfway
  EXPECT_EQ(round_to_bf16(-2.5f), -2.5f);
  EXPECT_TRUE(std::isnan(round_to_bf16(std::nanf(""))));
  EXPECT_EQ(round_to_bf16(INFINITY), INFINITY);
}

struct Bf16Case {
  bool ta, tb;
  std::int64_t m, n, k;
  float alpha, beta;
};

class Bf16Gemm : public ::testing::TestWithParam<Bf16Case> {};

TEST_P(Bf16Gemm, MatchesFloat64OnRoundedOperands) {
  if (!detail::bf16_products_supported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  const Bf16Case c = GetParam();
  Generator g(7);
  // Stored shapes, with leading dimensions wider than the rows.
  const std::int64_t a_rows = c.ta ? c.k : c.m, a_cols = c.ta ? c.m : c.k;
  const std::int64_t b_rows = c.tb ? c.n : c.k, b_cols = c.tb ? c.k : c.n;
  const std::int64_t lda = a_cols + 3, ldb = b_cols + 5, ldc = c.n + 2;
  const auto values = [&](std::int64_t count) {
    std::vector<float> v(static_cast<std::size_t>(count));
    const std::vector<double> normal = Tensor::randn({count}, g, DType::Float64).to_vector();
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(normal[i]);
    return v;
  };
  const std::vector<float> a = values(a_rows * lda), b = values(b_rows * ldb);
  std::vector<float> out = values(c.m * ldc);
  const std::vector<float> before = out;
  ASSERT_TRUE(detail::gemm_bf16(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.data(), lda, b.data(), ldb,
                                c.beta, out.data(), ldc));
  for (std::int64_t i = 0; i < c.m; ++i)
    for (std::int64_t j = 0; j < ldc; ++j) {
      const std::size_t at = static_cast<std::size_t>(i * ldc + j);
      if (j >= c.n) {  // beyond the product's columns: untouched
        EXPECT_EQ(out[at], before[at]) << i << "," << j;
        continue;
      }
      double sum = 0, magnitude = 0;
      for (std::int64_t t = 0; t < c.k; ++t) {
        const float x = a[static_cast<std::size_t>(c.ta ? t * lda + i : i * lda + t)];
        const float y = b[static_cast<std::size_t>(c.tb ? j * ldb + t : t * ldb + j)];
        const double product = double(round_to_bf16(x)) * double(round_to_bf16(y));
        sum += product;
        magnitude += std::abs(product);
      }
      const double expected = c.alpha * sum + (c.beta != 0 ? c.beta * double(before[at]) : 0.0);
      // Float32 sums of products that are exact in float32 (8-bit mantissas multiply exactly).
      EXPECT_NEAR(out[at], expected, 2e-6 * (std::abs(c.alpha) * magnitude + 1))
          << "m " << c.m << " n " << c.n << " k " << c.k << " at " << i << "," << j;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, Bf16Gemm,
                         ::testing::Values(Bf16Case{false, false, 13, 70, 37, 1, 0},
                                           Bf16Case{true, false, 7, 64, 128, 1, 0},
                                           Bf16Case{false, true, 6, 17, 5, 0.5f, 1},
                                           Bf16Case{true, true, 25, 33, 1, 1, 0.25f},
                                           Bf16Case{false, false, 1, 1, 300, -2, 0},
                                           Bf16Case{true, false, 64, 128, 784, 1, 1},
                                           Bf16Case{false, true, 40, 200, 0, 1, 0.5f}));

// While a BFloat16Products lives, the float32 products of ops take the bf16 path (the result
// equals gemm_bf16's); before and after, they are float32 (and differ from it).
TEST(Bf16Products, ScopeSwitchesEveryFloat32Product) {
  if (!detail::bf16_products_supported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  Generator g(8);
  const Tensor x = Tensor::randn({96, 200}, g), w = Tensor::randn({200, 80}, g);
  std::vector<float> bf16(96 * 80);
  ASSERT_TRUE(detail::gemm_bf16(false, false, 96, 80, 200, 1, x.data<float>(), 200, w.data<float>(),
                                80, 0, bf16.data(), 80));
  const std::vector<double> expected(bf16.begin(), bf16.end());
  const std::vector<double> before = matmul(x, w).to_vector();
  std::vector<double> during;
  {
    detail::BFloat16Products products;
    EXPECT_TRUE(detail::bf16_products_enabled());
    during = matmul(x, w).to_vector();
  }
  EXPECT_FALSE(detail::bf16_products_enabled());
  EXPECT_EQ(during, expected);
  EXPECT_NE(before, expected);
  EXPECT_EQ(matmul(x, w).to_vector(), before);
}

// TrainerOptions::bf16_products: the same model trained from the same start with bf16 products
// and with float32 learns as well, ends with different weights (the products did change), and
// fit() leaves float32 products behind it.
TEST(Bf16Training, LearnsLikeFloat32AndEndsWithFit) {
  if (!detail::bf16_products_supported()) GTEST_SKIP() << "this CPU has no AVX512_BF16";
  Generator data(3);
  Tensor x = Tensor::randn({512, 8}, data);
  std::vector<std::int64_t> labels(512);
  for (std::int64_t i = 0; i < 512; ++i) {
    labels[static_cast<std::size_t>(i)] = static_cast<std::int64_t>(data.below(4));
    x.set({i, labels[static_cast<std::size_t>(i)]},
          x.at({i, labels[static_cast<std::size_t>(i)]}) + 3);
  }
  const auto examples = std::make_shared<TensorDataset>(x, Tensor::from_indices(labels, {512}));
  const nlohmann::json spec = nlohmann::json::parse(
      R"([{"type":"linear","in":8,"out":64},{"type":"relu"},{"type":"linear","in":64,"out":4}])");
  std::vector<std::vector<double>> weights;
  for (const bool bf16 : {false, true}) {
    Generator init(1);
    auto model = make_sequential(spec, init);
    Adam adam(model->named_parameters(), {.learning_rate = 1e-2});
    DataLoader loader(examples, {.batch_size = 64, .seed = 2});
    std::ostringstream log;
    Trainer trainer(
        *model, adam, [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); },
        Task::Classification,
        {.epochs = 5,
         .log_every = 0,
         .bf16_products = bf16,
         .progress = TrainerOptions::Progress::Never},
        nullptr, log);
    trainer.fit(loader, &loader);
    EXPECT_FALSE(detail::bf16_products_enabled());
    EXPECT_GT(trainer.history().back().validation.accuracy, 0.95) << "bf16 " << bf16;
    weights.push_back(model->state_dict().at("0.weight").to_vector());
  }
  EXPECT_NE(weights[0], weights[1]);
}

}  // namespace
}  // namespace lathe
