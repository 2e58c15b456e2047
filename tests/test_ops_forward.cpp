// Forward values of every op family against closed-form math computed independently here.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "lathe/lathe.h"

namespace lathe {
namespace {

Tensor f64(std::vector<double> values, Shape shape) {
  return Tensor::from_vector(values, shape, DType::Float64);
}

void expect_values(const Tensor& t, const std::vector<double>& expected, double tolerance = 1e-12) {
  const auto got = t.to_vector();
  ASSERT_EQ(got.size(), expected.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], expected[i], tolerance) << "element " << i;
}

TEST(Elementwise, BroadcastAddRowAndColumn) {
  const Tensor column = f64({1, 2, 3}, {3, 1});
  const Tensor row = f64({10, 20}, {2});
  const Tensor out = column + row;
  EXPECT_EQ(out.shape(), (Shape{3, 2}));
  expect_values(out, {11, 21, 12, 22, 13, 23});
}

TEST(Elementwise, ScalarOperatorsAndUnaryFunctions) {
  const Tensor x = f64({0.25, 1, 4}, {3});
  expect_values(2.0 * x - 1.0, {-0.5, 1, 7});
  expect_values(1.0 / x, {4, 1, 0.25});
  expect_values(sqrt(x), {0.5, 1, 2});
  expect_values(log(x), {std::log(0.25), 0, std::log(4.0)});
  expect_values(exp(x), {std::exp(0.25), std::exp(1.0), std::exp(4.0)});
  expect_values(pow(x, 1.5), {0.125, 1, 8});
  expect_values(pow(x, f64({2, 0, 0.5}, {3})), {0.0625, 1, 2});
  expect_values(abs(f64({-2, 0, 3}, {3})), {2, 0, 3});
  expect_values(clamp(f64({-2, 0.3, 3}, {3}), -1.0, 1.0), {-1, 0.3, 1});
  expect_values(neg(x), {-0.25, -1, -4});
}

TEST(Elementwise, Float32MatchesFloat64) {
  Generator generator(5);
  const Tensor a = Tensor::randn({7, 9}, generator, DType::Float64);
  const Tensor b = Tensor::randn({9}, generator, DType::Float64);
  const Tensor wide = tanh(a * b + exp(a) / (abs(b) + 1.0));
  const Tensor narrow = tanh(a.to(DType::Float32) * b.to(DType::Float32) +
                             exp(a.to(DType::Float32)) / (abs(b.to(DType::Float32)) + 1.0));
  EXPECT_EQ(narrow.dtype(), DType::Float32);
  expect_values(narrow, wide.to_vector(), 1e-5);
}

// Matmul against a plain triple loop in double, for every transpose flag and a batch.
// float32 tanh (and the tanh inside GELU) is lathe's own vectorizable one, not libm's.
TEST(Elementwise, Float32TanhAndGeluTanhAreWithin2e7OfLibm) {
  std::vector<double> xs;
  for (double x = -20; x <= 20; x += 0.001) xs.push_back(x);
  for (double x : {0.0, -0.0, 1e-30, -1e-8, 3e-5, 87.5, -200.0}) xs.push_back(x);
  const auto n = static_cast<std::int64_t>(xs.size());
  const Tensor x32 = Tensor::from_vector(xs, {n});
  const std::vector<double> t = tanh(x32).to_vector();
  const std::vector<double> g = gelu(x32, GeluApproximation::Tanh).to_vector();
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = static_cast<float>(xs[i]);
    ASSERT_NEAR(t[i], std::tanh(x), 2e-7) << x;
    const double inner = std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x);
    ASSERT_NEAR(g[i], 0.5 * x * (1 + std::tanh(inner)), 2e-7 * std::max(1.0, std::abs(x))) << x;
  }
  const std::vector<double> special =
      tanh(Tensor::from_vector({std::nan(""), INFINITY, -INFINITY}, {3})).to_vector();
  EXPECT_TRUE(std::isnan(special[0]));
  EXPECT_EQ(special[1], 1.0);
  EXPECT_EQ(special[2], -1.0);
}

// From 2^18 multiply-adds each, the two gradient products of linear and matmul run side by side on
// the pool (detail::run_products); they must equal the products computed one at a time.
TEST(Matmul, GradientProductsLargeEnoughToRunConcurrentlyAreRight) {
  Generator generator(5);
  const Tensor x = Tensor::randn({256, 160}, generator).requires_grad_();
  const Tensor w = Tensor::randn({128, 160}, generator).requires_grad_();
  const Tensor b = Tensor::randn({128}, generator).requires_grad_();
  const Tensor g = Tensor::randn({256, 128}, generator);
  linear(x, w, b).backward(g);
  const Tensor dx = matmul(g, w.detach()), dw = matmul(g, x.detach(), true, false);
  const auto near = [](const Tensor& actual, const Tensor& expected) {
    const auto a = actual.to_vector(), e = expected.to_vector();
    ASSERT_EQ(a.size(), e.size());
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], e[i], 1e-4 * (1 + std::abs(e[i])));
  };
  near(x.grad(), dx);
  near(w.grad(), dw);
  const Tensor a = Tensor::randn({192, 256}, generator).requires_grad_();
  const Tensor c = Tensor::randn({128, 256}, generator).requires_grad_();
  const Tensor gc = Tensor::randn({192, 128}, generator);
  matmul(a, c, false, true).backward(gc);
  near(a.grad(), matmul(gc, c.detach()));
  near(c.grad(), matmul(gc, a.detach(), true, false));

  // 512 rows: the forward product is split into row blocks over the pool (detail::gemm); rows on
  // both sides of the split against plain sums.
  const Tensor big = Tensor::randn({512, 160}, generator);
  const auto out = linear(big, w.detach(), b.detach()).to_vector();
  const auto xv = big.to_vector(), wv = w.to_vector(), bv = b.to_vector();
  for (std::int64_t row : {0, 200, 255, 256, 300, 511})
    for (std::int64_t col : {0, 77, 127}) {
      double expected = bv[col];
      for (std::int64_t i = 0; i < 160; ++i) expected += xv[row * 160 + i] * wv[col * 160 + i];
      ASSERT_NEAR(out[row * 128 + col], expected, 1e-4 * (1 + std::abs(expected)));
    }
}

TEST(Matmul, AgreesWithNaiveLoopsForAllTransposeFlags) {
  Generator generator(9);
  const std::int64_t k = 7, n = 3;
  for (std::int64_t m : {5, 1})  // one row goes through GEMV
    for (bool ta : {false, true}) {
      for (bool tb : {false, true}) {
        const Tensor a = Tensor::randn(ta ? Shape{k, m} : Shape{m, k}, generator, DType::Float64);
        const Tensor b = Tensor::randn(tb ? Shape{n, k} : Shape{k, n}, generator, DType::Float64);
        const Tensor c = matmul(a, b, ta, tb);
        ASSERT_EQ(c.shape(), (Shape{m, n}));
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            double expected = 0;
            for (std::int64_t p = 0; p < k; ++p)
              expected += (ta ? a.at({p, i}) : a.at({i, p})) * (tb ? b.at({j, p}) : b.at({p, j}));
            EXPECT_NEAR(c.at({i, j}), expected, 1e-12) << "ta=" << ta << " tb=" << tb;
          }
      }
    }
}

// detail::gemm splits a product with enough work over the pool: by rows, by columns when there
// are too few rows, and hands one too narrow for either to OpenBLAS's own threads. Each way, with
// every transpose flag and parts of unequal size, against plain sums of every element.
TEST(Matmul, ProductsSplitOverThePoolAgreeWithNaiveLoops) {
  const int threads = num_threads();
  set_num_threads(3);  // uneven parts
  Generator generator(11);
  struct Case {
    std::int64_t m, n, k;
  };
  for (const Case& shape : {Case{200, 40, 1000}, Case{40, 250, 700}, Case{40, 40, 5000}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const auto [m, n, k] = shape;
        const Tensor a = Tensor::randn(ta ? Shape{k, m} : Shape{m, k}, generator, DType::Float64);
        const Tensor b = Tensor::randn(tb ? Shape{n, k} : Shape{k, n}, generator, DType::Float64);
        const std::vector<double> c = matmul(a, b, ta, tb).to_vector();
        const std::vector<double> av = a.to_vector(), bv = b.to_vector();
        for (std::int64_t i = 0; i < m; ++i)
          for (std::int64_t j = 0; j < n; ++j) {
            double expected = 0;
            for (std::int64_t p = 0; p < k; ++p)
              expected +=
                  (ta ? av[p * m + i] : av[i * k + p]) * (tb ? bv[j * k + p] : bv[p * n + j]);
            ASSERT_NEAR(c[i * n + j], expected, 1e-10) << m << "x" << n << "x" << k << " ta=" << ta
                                                       << " tb=" << tb << " at " << i << "," << j;
          }
      }
  set_num_threads(threads);
}

TEST(Matmul, BatchedAndBatchTimesMatrix) {
  Generator generator(10);
  const Tensor a = Tensor::randn({3, 4, 5}, generator, DType::Float64);
  const Tensor b = Tensor::randn({3, 5, 2}, generator, DType::Float64);
  const Tensor w = Tensor::randn({5, 2}, generator, DType::Float64);
  const Tensor batched = matmul(a, b);
  const Tensor shared = matmul(a, w);
  ASSERT_EQ(batched.shape(), (Shape{3, 4, 2}));
  ASSERT_EQ(shared.shape(), (Shape{3, 4, 2}));
  for (std::int64_t s = 0; s < 3; ++s)
    for (std::int64_t i = 0; i < 4; ++i)
      for (std::int64_t j = 0; j < 2; ++j) {
        double with_b = 0, with_w = 0;
        for (std::int64_t p = 0; p < 5; ++p) {
          with_b += a.at({s, i, p}) * b.at({s, p, j});
          with_w += a.at({s, i, p}) * w.at({p, j});
        }
        EXPECT_NEAR(batched.at({s, i, j}), with_b, 1e-12);
        EXPECT_NEAR(shared.at({s, i, j}), with_w, 1e-12);
      }
}

TEST(Matmul, LinearIsMatmulWithTransposedWeightPlusBias) {
  Generator generator(12);
  for (std::int64_t m : {1, 6}) {
    const Tensor x = Tensor::randn({m, 5}, generator, DType::Float64);
    const Tensor w = Tensor::randn({3, 5}, generator, DType::Float64);
    const Tensor b = Tensor::randn({3}, generator, DType::Float64);
    expect_values(linear(x, w, b), (matmul(x, w, false, true) + b).to_vector(), 1e-12);
    expect_values(linear(x, w), matmul(x, w, false, true).to_vector(), 1e-12);
  }
}

TEST(Matmul, EmptyInnerDimensionGivesZeros) {
  const Tensor c = matmul(Tensor::zeros({2, 0}), Tensor::zeros({0, 3}));
  expect_values(c, std::vector<double>(6, 0.0));
}

TEST(Reduce, SumMeanMaxArgmax) {
  const Tensor x = f64({1, 5, 3, 4, 2, 6}, {2, 3});
  expect_values(sum(x), {21});
  expect_values(sum(x, {0}), {5, 7, 9});
  expect_values(sum(x, {1}, true), {9, 12});
  EXPECT_EQ(sum(x, {1}, true).shape(), (Shape{2, 1}));
  expect_values(mean(x, {-1}), {3, 4});
  expect_values(max(x, 1), {5, 6});
  expect_values(max(x, 0), {4, 5, 6});
  const Tensor index = argmax(x, 1);
  EXPECT_EQ(index.dtype(), DType::Int64);
  expect_values(index, {1, 2});
  expect_values(argmax(f64({2, 7, 7}, {3}), 0), {1});  // the first maximum wins
}

TEST(Shape, ReshapeSharesStoragePermuteCopies) {
  Tensor x = f64({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor r = reshape(x, {3, -1});
  EXPECT_EQ(r.shape(), (Shape{3, 2}));
  x.set({0, 0}, 42);
  EXPECT_EQ(r.at({0, 0}), 42);
  const Tensor t = transpose(f64({0, 1, 2, 3, 4, 5}, {2, 3}), 0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  expect_values(t, {0, 3, 1, 4, 2, 5});
  const Tensor p = permute(Tensor::arange(24, DType::Float64).to(DType::Float64), {0});
  expect_values(p, Tensor::arange(24, DType::Float64).to_vector());
  const Tensor cube = reshape(Tensor::arange(24, DType::Float64), {2, 3, 4});
  const Tensor moved = permute(cube, {2, 0, 1});
  EXPECT_EQ(moved.shape(), (Shape{4, 2, 3}));
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t k = 0; k < 4; ++k) EXPECT_EQ(moved.at({k, i, j}), cube.at({i, j, k}));
}

TEST(Shape, SliceConcatIndexSelectGather) {
  const Tensor x = reshape(Tensor::arange(12, DType::Float64), {3, 4});
  expect_values(slice(x, 1, 1, 3), {1, 2, 5, 6, 9, 10});
  expect_values(slice(x, 0, -1, 100), {8, 9, 10, 11});
  expect_values(slice(x, 1, 0, 4, 3), {0, 3, 4, 7, 8, 11});
  EXPECT_EQ(slice(x, 1, 3, 1).shape(), (Shape{3, 0}));
  const Tensor joined = concat({slice(x, 1, 0, 1), slice(x, 1, 3, 4)}, 1);
  expect_values(joined, {0, 3, 4, 7, 8, 11});
  expect_values(index_select(x, 0, Tensor::from_indices({2, 0}, {2})), {8, 9, 10, 11, 0, 1, 2, 3});
  expect_values(gather(x, 1, Tensor::from_indices({3, 0, 1, 1, 2, 2}, {3, 2})),
                {3, 0, 5, 5, 10, 10});
  const Tensor labels = Tensor::from_indices({4, 5, 6, 7}, {2, 2});
  expect_values(reshape(labels, {4}), {4, 5, 6, 7});
  expect_values(index_select(labels, 1, Tensor::from_indices({1}, {1})), {5, 7});
}

TEST(Activation, ClosedFormValues) {
  const Tensor x = f64({-1, 0, 1}, {3});
  expect_values(relu(x), {0, 0, 1});
  expect_values(leaky_relu(x, 0.2), {-0.2, 0, 1});
  expect_values(sigmoid(x), {1 / (1 + std::exp(1.0)), 0.5, 1 / (1 + std::exp(-1.0))});
  expect_values(tanh(x), {std::tanh(-1.0), 0, std::tanh(1.0)});
  // x * Phi(x) with Phi(1) = 0.8413447460685429 (standard normal CDF).
  expect_values(gelu(x), {-0.15865525393145707, 0, 0.8413447460685429}, 1e-12);
  const double inner = std::sqrt(2 / std::numbers::pi) * (1 + 0.044715);
  expect_values(gelu(x, GeluApproximation::Tanh),
                {-0.5 * (1 + std::tanh(-inner)), 0, 0.5 * (1 + std::tanh(inner))});
  // Extreme inputs stay finite.
  expect_values(sigmoid(f64({-1000, 1000}, {2})), {0, 1});
}

TEST(Activation, SoftmaxAndLogSoftmax) {
  const Tensor x = f64({1, 2, 3, 1000, 1000, 1000}, {2, 3});
  const double total = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  expect_values(softmax(x, 1), {std::exp(1.0) / total, std::exp(2.0) / total, std::exp(3.0) / total,
                                1.0 / 3, 1.0 / 3, 1.0 / 3});
  expect_values(log_softmax(x, -1), {1 - std::log(total), 2 - std::log(total), 3 - std::log(total),
                                     -std::log(3.0), -std::log(3.0), -std::log(3.0)});
  const Tensor columns = softmax(f64({0, 0, std::log(3.0), 0}, {2, 2}), 0);
  expect_values(columns, {0.25, 0.5, 0.75, 0.5});
}

TEST(Loss, ClosedFormValues) {
  const Tensor logits = f64({1, 2, 3, 0, 0, 0}, {2, 3});
  const Tensor targets = Tensor::from_indices({2, 0}, {2});
  const double row0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)) - 3;
  const double row1 = std::log(3.0);
  expect_values(cross_entropy(logits, targets), {(row0 + row1) / 2});
  const Tensor weights = f64({2, 1, 0.5}, {3});
  expect_values(cross_entropy(logits, targets, weights), {(0.5 * row0 + 2 * row1) / 2.5});
  expect_values(nll_loss(log_softmax(logits, 1), targets), {(row0 + row1) / 2});
  expect_values(mse_loss(f64({1, 2, 3}, {3}), f64({1, 0, 6}, {3})), {13.0 / 3});
  // max(x,0) - x*y + log(1 + exp(-|x|)), including a logit that would overflow a naive exp.
  expect_values(binary_cross_entropy_with_logits(f64({0, 1000, -2}, {3}), f64({1, 0, 0.25}, {3})),
                {(std::log(2.0) + 1000 + (0.5 + std::log1p(std::exp(-2.0)))) / 3});
}

// float32 cross-entropy takes its softmax's exponentials from detail::exp_nonpositive, not
// libm: loss and gradient against float64 (libm) over logits from -60 to 60, and a logit of
// -inf, whose probability and gradient stay 0 to float precision.
TEST(Loss, Float32CrossEntropyAgreesWithFloat64) {
  Generator generator(12);
  Tensor wide = Tensor::randn({64, 10}, generator, DType::Float64) * 20.0;
  wide.set({3, 4}, -INFINITY);
  const Tensor targets =
      Tensor::from_indices({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1,
                            2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3,
                            4, 5, 6, 7, 8, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2, 3},
                           {64});
  const Tensor x64 = wide.detach().requires_grad_(), x32 = wide.to(DType::Float32).requires_grad_();
  const Tensor l64 = cross_entropy(x64, targets), l32 = cross_entropy(x32, targets);
  EXPECT_NEAR(l32.item(), l64.item(), 1e-6 * std::abs(l64.item()));
  l64.backward();
  l32.backward();
  const auto g64 = x64.grad().to_vector(), g32 = x32.grad().to_vector();
  for (std::size_t i = 0; i < g64.size(); ++i) ASSERT_NEAR(g32[i], g64[i], 1e-7) << i;
  EXPECT_LT(std::abs(g32[3 * 10 + 4]), 1e-30);
}

TEST(Loss, LabelSmoothingAsPyTorch) {
  const Tensor targets = Tensor::from_indices({2, 0}, {2});
  const Tensor weights = f64({2, 1, 0.5}, {3});
  const auto logits = [] { return f64({1, 2, 3, 0, 0, 0}, {2, 3}).requires_grad_(); };
  // -log_softmax by hand; the target distribution is 0.9 one-hot + 0.1 / 3 on every class.
  const double lse0 = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  const double nlp[2][3] = {{lse0 - 1, lse0 - 2, lse0 - 3},
                            {std::log(3.0), std::log(3.0), std::log(3.0)}};
  const double eps = 0.1, uniform = (nlp[0][0] + nlp[0][1] + nlp[0][2]) + 3 * nlp[1][0];
  Tensor x = logits();
  Tensor loss = cross_entropy(x, targets, Tensor(), eps);
  expect_values(loss, {((1 - eps) * (nlp[0][2] + nlp[1][0]) + eps / 3 * uniform) / 2});
  // PyTorch 1.13: F.cross_entropy(x, y, label_smoothing=0.1) and its gradient.
  EXPECT_NEAR(loss.item(), 0.8031091265562451, 1e-14);
  loss.backward();
  expect_values(x.grad(), {0.02834861991852355, 0.10569756886073216, -0.13404618877925578,
                           -0.30000000000000004, 0.14999999999999999, 0.14999999999999999});
  // With class weights: PyTorch 1.13 weights the uniform part by w[c] and divides both parts by
  // sum(w[y_i]).
  x = logits();
  loss = cross_entropy(x, targets, weights, eps);
  const double weighted_uniform =
      2 * (nlp[0][0] + nlp[1][0]) + 1 * (nlp[0][1] + nlp[1][1]) + 0.5 * (nlp[0][2] + nlp[1][2]);
  expect_values(
      loss, {((1 - eps) * (0.5 * nlp[0][2] + 2 * nlp[1][0]) + eps / 3 * weighted_uniform) / 2.5});
  EXPECT_NEAR(loss.item(), 1.0013267732529438, 1e-14);
  loss.backward();
  expect_values(x.grad(), {-0.00625973674804710, 0.04213845343908746, -0.03587871669104040,
                           -0.49111111111111105, 0.24222222222222220, 0.24888888888888885});
}

TEST(Loss, ZeroLabelSmoothingIsThePlainLossBitForBit) {
  Generator g(3);
  for (DType dtype : {DType::Float32, DType::Float64}) {
    const Tensor targets = Tensor::from_indices({4, 0, 2, 2, 1, 3, 0}, {7});
    const Tensor weights = Tensor::rand({5}, g, dtype);
    Tensor a = Tensor::randn({7, 5}, g, dtype).requires_grad_();
    Tensor b = a.detach().requires_grad_();
    for (const Tensor& w : {Tensor(), weights}) {
      a.zero_grad(), b.zero_grad();
      Tensor plain = cross_entropy(a, targets, w), smoothed = cross_entropy(b, targets, w, 0.0);
      EXPECT_EQ(plain.item(), smoothed.item());
      plain.backward();
      smoothed.backward();
      EXPECT_EQ(a.grad().to_vector(), b.grad().to_vector());
    }
  }
}

}  // namespace
}  // namespace lathe
