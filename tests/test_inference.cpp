// InferencePlan: the frozen fast path must give the module's own outputs, for one example (the
// register-tiled kernel) and for batches (GEMM on the transposed weights).
#include <gtest/gtest.h>

#include <cmath>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

// Widths cover a partial vector (10, 17), exactly one tile of 8x16 (128) and more than one tile
// with a partial last one (200), a layer without bias, and activations that are and are not
// folded into the linear layer before them.
nlohmann::json mixed_spec() {
  return nlohmann::json::parse(R"([
    {"type": "flatten"},
    {"type": "linear", "in": 12, "out": 200}, {"type": "relu"},
    {"type": "linear", "in": 200, "out": 128}, {"type": "tanh"},
    {"type": "linear", "in": 128, "out": 17, "bias": false}, {"type": "relu"}, {"type": "relu"},
    {"type": "dropout", "p": 0.5},
    {"type": "linear", "in": 17, "out": 10}])");
}

void expect_close(const Tensor& actual, const Tensor& expected) {
  ASSERT_EQ(actual.shape(), expected.shape());
  const std::vector<double> a = actual.to_vector(), e = expected.to_vector();
  for (std::size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], e[i], 1e-5 * (1 + std::abs(e[i]))) << "element " << i;
}

// in -> hidden1 -> hidden2 -> 10, ReLU after the hidden layers, in evaluation mode.
std::shared_ptr<Module> mlp_in_evaluation(std::int64_t in, std::int64_t hidden1,
                                          std::int64_t hidden2, Generator& g) {
  auto model = make_sequential(
      nlohmann::json::array({{{"type", "linear"}, {"in", in}, {"out", hidden1}},
                             {{"type", "relu"}},
                             {{"type", "linear"}, {"in", hidden1}, {"out", hidden2}},
                             {{"type", "relu"}},
                             {{"type", "linear"}, {"in", hidden2}, {"out", 10}}}),
      g);
  model->eval();
  return model;
}

TEST(InferencePlan, MatchesTheModuleForOneExampleAndForBatches) {
  Generator g(3);
  auto model = make_sequential(mixed_spec(), g);
  model->eval();
  const std::optional<InferencePlan> plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  NoGradGuard no_grad;
  for (const std::int64_t rows : {1, 2, 7}) {
    const Tensor x = Tensor::randn({rows, 3, 4}, g);
    const Tensor expected = model->forward(x);
    const Tensor actual = plan->forward(x);
    expect_close(actual, expected);
    EXPECT_FALSE(actual.requires_grad());
  }
}

// A layer with more than 2^18 weights (1100 x 250, its last tile partial) is shared out over
// the thread pool by output columns for one example: the same values as the module's.
TEST(InferencePlan, OneExampleThroughAWideLayerSharedOutByColumns) {
  Generator g(5);
  auto model = mlp_in_evaluation(12, 1100, 250, g);
  const std::optional<InferencePlan> plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  NoGradGuard no_grad;
  const Tensor x = Tensor::randn({1, 12}, g);
  expect_close(plan->forward(x), model->forward(x));
}

// Runs `model` in training mode on a few batches of `features` inputs, so batch norms' running
// statistics move away from 0 and 1, then checks its plan in evaluation against the module itself
// for one example and for a batch.
void expect_plan_matches_the_module_after_training(const std::shared_ptr<Module>& model,
                                                   std::int64_t features, Generator& g) {
  {
    NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) model->forward(Tensor::randn({16, features}, g) * 3.0 + 1.0);
  }
  model->eval();
  const std::optional<InferencePlan> plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  NoGradGuard no_grad;
  for (const std::int64_t rows : {1, 5}) {
    const Tensor x = Tensor::randn({rows, features}, g);
    expect_close(plan->forward(x), model->forward(x));
  }
}

// The layers between linear ones run as one Sequential (batch norm and ReLU fused): the CNN's
// shape, with running statistics that are not the identity.
// The plan folds each conv2d with the batch norm and/or relu after it into one convolution
// (src/deploy/conv_folding.cpp): every combination, on the im2col path (one input channel) and
// on Winograd's (8 channels), with batch norm's statistics and affine parameters far from
// identity, must give the module's outputs.
TEST(InferencePlan, ConvolutionalLayersBeforeTheLinearOnesGiveTheModulesOutputs) {
  Generator g(7);
  auto model = make_sequential(nlohmann::json::parse(R"([
    {"type": "reshape", "shape": [1, 6, 6]},
    {"type": "conv2d", "in": 1, "out": 8, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 8}, {"type": "relu"},
    {"type": "conv2d", "in": 8, "out": 8, "kernel_size": 3, "padding": 1, "bias": false},
    {"type": "batch_norm2d", "features": 8},
    {"type": "conv2d", "in": 8, "out": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in": 8, "out": 4, "kernel_size": 1},
    {"type": "flatten"},
    {"type": "linear", "in": 36, "out": 8}, {"type": "relu"},
    {"type": "linear", "in": 8, "out": 3}])"),
                               g);
  for (const NamedTensor& p : model->named_parameters()) {
    Tensor live = p.tensor;  // shares the parameter's storage
    const std::vector<double> values = (Tensor::randn(live.shape(), g) * 0.5 + 0.5).to_vector();
    std::copy(values.begin(), values.end(), live.data<float>());
  }
  expect_plan_matches_the_module_after_training(model, 36, g);
}

// A 2x2, stride-2 max pool after a folded convolution's relu is applied as the convolution
// writes its outputs (src/ops/conv_epilogue.h), on the one-channel kernel and on Winograd's, with
// odd sizes whose last row and column no window covers; a pool of another stride stays a layer.
TEST(InferencePlan, MaxPoolsAfterFoldedConvolutionsGiveTheModulesOutputs) {
  Generator g(12);
  auto model = make_sequential(nlohmann::json::parse(R"([
    {"type": "reshape", "shape": [1, 9, 9]},
    {"type": "conv2d", "in": 1, "out": 8, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 8}, {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in": 8, "out": 8, "kernel_size": 3, "padding": 1}, {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2, "stride": 1},
    {"type": "conv2d", "in": 8, "out": 8, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 8}, {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "flatten"},
    {"type": "linear", "in": 8, "out": 3}])"),
                               g);
  expect_plan_matches_the_module_after_training(model, 81, g);
}

// Predictor folds the bundle's preprocessing (x a + b per feature, or one a and b for all) into
// the first linear layer when only reshaping layers come before it; the plan then takes the raw
// inputs. Its outputs must be the module's on the mapped inputs. A convolution first, or an int8
// plan, is refused and left unchanged.
TEST(InferencePlan, FoldsTheInputMapIntoTheFirstLinearLayer) {
  Generator g(13);
  for (const bool per_feature : {false, true}) {
    auto model = mlp_in_evaluation(12, 20, 16, g);
    std::optional<InferencePlan> plan = InferencePlan::compile(model);
    ASSERT_TRUE(plan.has_value());
    const std::vector<double> a = per_feature
                                      ? (Tensor::randn({12}, g, DType::Float64) + 2.0).to_vector()
                                      : std::vector<double>{1.0 / 255};
    const std::vector<double> b = per_feature ? Tensor::randn({12}, g, DType::Float64).to_vector()
                                              : std::vector<double>{-0.5};
    ASSERT_TRUE(plan->fold_input_affine(a, b));
    NoGradGuard no_grad;
    const Tensor raw = Tensor::randn({5, 12}, g) * 100.0 + 50.0;
    const std::vector<double> values = raw.to_vector();
    std::vector<double> mapped(values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::size_t k = per_feature ? i % 12 : 0;
      mapped[i] = values[i] * a[k] + b[k];
    }
    const Tensor expected = model->forward(Tensor::from_vector(mapped, {5, 12}));
    expect_close(plan->forward(raw), expected);
    expect_close(plan->forward(reshape(slice(raw, 0, 2, 3), {1, 12})),
                 reshape(slice(expected, 0, 2, 3), {1, 10}));
  }
  auto convolutional = make_sequential(nlohmann::json::parse(R"([
    {"type": "reshape", "shape": [1, 4, 4]},
    {"type": "conv2d", "in": 1, "out": 2, "kernel_size": 3, "padding": 1},
    {"type": "flatten"}, {"type": "linear", "in": 32, "out": 3}])"),
                                       g);
  convolutional->eval();
  std::optional<InferencePlan> refused = InferencePlan::compile(convolutional);
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->fold_input_affine({2.0}, {1.0}));
  const Tensor x = Tensor::randn({2, 16}, g);
  NoGradGuard no_grad;
  expect_close(refused->forward(x), convolutional->forward(x));
  std::optional<InferencePlan> int8 =
      InferencePlan::compile(mlp_in_evaluation(12, 20, 16, g), InferencePrecision::Int8);
  ASSERT_TRUE(int8.has_value());
  EXPECT_FALSE(int8->fold_input_affine({2.0}, {1.0}));
}

TEST(InferencePlan, SeedMlpOneExampleEqualsItsRowInABatch) {
  Generator g(4);
  auto model = mlp_in_evaluation(784, 128, 64, g);
  const auto plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  const Tensor batch = Tensor::randn({5, 784}, g);
  const Tensor all = plan->forward(batch);
  for (std::int64_t r = 0; r < 5; ++r)
    expect_close(plan->forward(reshape(slice(batch, 0, r, r + 1), {1, 784})),
                 reshape(slice(all, 0, r, r + 1), {1, 10}));
}

TEST(InferencePlan, IsASnapshotOfTheWeights) {
  Generator g(5);
  auto model =
      make_sequential(nlohmann::json::parse(R"([{"type": "linear", "in": 3, "out": 2}])"), g);
  model->eval();
  const auto plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  const Tensor x = Tensor::randn({1, 3}, g);
  const std::vector<double> before = plan->forward(x).to_vector();
  Generator other(6);
  model->load_state_dict(
      make_sequential(nlohmann::json::parse(R"([{"type": "linear", "in": 3, "out": 2}])"), other)
          ->state_dict());
  NoGradGuard no_grad;
  ASSERT_NE(model->forward(x).to_vector(), before);  // the module did change
  EXPECT_EQ(plan->forward(x).to_vector(), before);
}

TEST(InferencePlan, OnlyForSequentialsWithALinearLayer) {
  Generator g(7);
  EXPECT_FALSE(InferencePlan::compile(make_layer({{"type", "linear"}, {"in", 2}, {"out", 2}}, g)));
  EXPECT_FALSE(
      InferencePlan::compile(make_sequential(nlohmann::json::parse(R"([{"type": "relu"}])"), g)));
}

TEST(InferencePlan, WrongInputWidthIsAClearError) {
  Generator g(8);
  auto model =
      make_sequential(nlohmann::json::parse(R"([{"type": "linear", "in": 3, "out": 2}])"), g);
  const auto plan = InferencePlan::compile(model);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(error_of([&] {
              plan->forward(Tensor::zeros({2, 4}));
            }),
            "linear(3->2): input of shape [2,4] (float32) does not end in 3 float32 features");
}

}  // namespace
}  // namespace lathe
