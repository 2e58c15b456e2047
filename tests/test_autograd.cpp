// The engine's contract: accumulation, no_grad, detach, retain_graph, upstream gradients,
// shared subexpressions, and the graph being freed after backward.
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/lathe.h"

namespace lathe {
namespace {

Tensor leaf(std::vector<double> values, Shape shape) {
  Tensor t = Tensor::from_vector(values, shape, DType::Float64);
  t.requires_grad_();
  return t;
}

TEST(Autograd, ChainRuleThroughSharedSubexpression) {
  // y = x*x + x: the two uses of x must add up: dy/dx = 2x + 1.
  Tensor x = leaf({3, -1}, {2});
  Tensor y = sum(x * x + x);
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{7, -1}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({2}, {1});
  sum(x * 3.0).backward();
  sum(x * 3.0).backward();
  EXPECT_EQ(x.grad().item(), 6);
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  sum(x * x).backward();
  EXPECT_EQ(x.grad().item(), 4);
}

TEST(Autograd, UpstreamGradientForNonScalarOutput) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = x * x;
  y.backward(Tensor::from_vector({1, 0, -1}, {3}, DType::Float64));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 0, -6}));
}

TEST(Autograd, NoGradScopeRecordsNothing) {
  Tensor x = leaf({1}, {1});
  {
    NoGradGuard no_grad;
    Tensor y = x * 2.0;
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
  }
  EXPECT_TRUE(grad_enabled());
  EXPECT_NE((x * 2.0).grad_fn(), nullptr);
}

TEST(Autograd, DetachSharesStorageButCutsTheGraph) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = x * 2.0;
  Tensor cut = y.detach();
  EXPECT_FALSE(cut.requires_grad());
  EXPECT_TRUE(cut.is_leaf());
  cut.set({0}, 100);
  EXPECT_EQ(y.at({0}), 100);
  // A detached branch contributes no gradient.
  sum(y + cut * 5.0).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{2, 2}));
}

TEST(Autograd, GraphIsFreedAfterBackwardUnlessRetained) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y = sum(exp(x));
  std::weak_ptr<Node> exp_node = y.grad_fn()->inputs.at(0).grad_fn();
  y.backward();
  EXPECT_TRUE(y.grad_fn()->released);
  EXPECT_TRUE(y.grad_fn()->inputs.empty());
  EXPECT_TRUE(exp_node.expired()) << "the closure of exp (and its saved output) is still alive";
  try {
    y.backward();
    FAIL() << "a second backward through a freed graph must throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("retain_graph"), std::string::npos) << e.what();
  }

  Tensor z = sum(exp(x));
  x.zero_grad();
  z.backward(Tensor(), /*retain_graph=*/true);
  z.backward();
  EXPECT_NEAR(x.grad().at({0}), 2 * std::exp(1.0), 1e-12);
}

TEST(Autograd, OnlyInputsThatRequireGradGetGradients) {
  Tensor w = leaf({1, 2, 3, 4}, {2, 2});
  Tensor x = Tensor::from_vector({1, 1}, {1, 2}, DType::Float64);
  sum(matmul(x, w)).backward();
  EXPECT_FALSE(x.grad().defined());
  EXPECT_EQ(w.grad().to_vector(), (std::vector<double>{1, 1, 1, 1}));
}

TEST(Autograd, BackwardFromALeafSeedsItsGradient) {
  Tensor x = leaf({5}, {});
  x.backward();
  EXPECT_EQ(x.grad().item(), 1);
}

TEST(Autograd, LeafGradientDoesNotAliasUpstream) {
  Tensor x = leaf({1, 2}, {2});
  Tensor upstream = Tensor::from_vector({1, 1}, {2}, DType::Float64);
  (x + 0.0).backward(upstream);
  upstream.fill_(7);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<double>{1, 1}));
}

TEST(Autograd, Float32Training) {
  // A few SGD steps on a least-squares problem in float32 reduce the loss.
  Generator generator(1);
  Tensor x = Tensor::randn({32, 3}, generator);
  Tensor true_w = Tensor::from_vector({1, -2, 0.5}, {3, 1});
  Tensor y = matmul(x, true_w);
  Tensor w = Tensor::zeros({3, 1});
  w.requires_grad_();
  double first = 0, last = 0;
  for (int step = 0; step < 50; ++step) {
    Tensor loss = mse_loss(matmul(x, w), y);
    if (step == 0) first = loss.item();
    last = loss.item();
    w.zero_grad();
    loss.backward();
    NoGradGuard no_grad;
    w.copy_(w - w.grad() * 0.1);
  }
  EXPECT_LT(last, first * 1e-3);
}

}  // namespace
}  // namespace lathe
