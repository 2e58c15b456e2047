// The gradcheck table: every differentiable op, with broadcasting and non-square cases, checked
// in float64 against central differences. A test fails when an op has no entry here.
#include <gtest/gtest.h>

#include <cmath>

#include "src/ops/attention_blocked.h"
#include "tests/gradcheck.h"

namespace lathe::testing {
namespace {

// How an input's values are drawn, so each op is checked away from its kinks and poles.
enum class Values { Normal, Positive, NonZero, UnitInterval, AwayFromHalf };

struct Input {
  Shape shape;
  Values values = Values::Normal;
};

struct GradcheckCase {
  std::string name;
  Op op;  // the op under test; it must appear in the recorded graph
  std::vector<Input> inputs;
  OpFunction f;
};

Tensor make_input(const Input& spec, Generator& generator) {
  Tensor t = Tensor::randn(spec.shape, generator, DType::Float64);
  double* x = t.data<double>();
  for (std::int64_t i = 0; i < t.numel(); ++i) {
    switch (spec.values) {
      case Values::Normal:
        break;
      case Values::Positive:
        x[i] = 0.5 + 1.5 * generator.uniform();
        break;
      case Values::NonZero:
        x[i] = std::copysign(0.2 + std::abs(x[i]), x[i]);
        break;
      case Values::UnitInterval:
        x[i] = 0.1 + 0.8 * generator.uniform();
        break;
      case Values::AwayFromHalf:  // clamp's bounds are +-0.5
        if (std::abs(std::abs(x[i]) - 0.5) < 0.05) x[i] += 0.1;
        break;
    }
  }
  return t;
}

Tensor indices(std::vector<std::int64_t> values, Shape shape) {
  return Tensor::from_indices(values, shape);
}

std::vector<GradcheckCase> table() {
  using V = Values;
  using Ts = std::vector<Tensor>;
  const Tensor targets5 = indices({0, 3, 1, 3, 2}, {5});
  const Tensor class_weights = Tensor::from_vector({0.5, 2.0, 1.0, 3.0}, {4}, DType::Float64);
  return {
      {"add same shape",
       Op::Add,
       {{{3, 4}}, {{3, 4}}},
       [](const Ts& x) { return add(x[0], x[1]); }},
      {"add broadcast [3,1]+[4]",
       Op::Add,
       {{{3, 1}}, {{4}}},
       [](const Ts& x) { return add(x[0], x[1]); }},
      {"add broadcast [2,3,4]+[3,1]",
       Op::Add,
       {{{2, 3, 4}}, {{3, 1}}},
       [](const Ts& x) { return x[0] + x[1]; }},
      {"add scalar tensor", Op::Add, {{{}}, {{2, 3}}}, [](const Ts& x) { return x[0] + x[1]; }},
      {"sub broadcast [2,5]-[5]",
       Op::Sub,
       {{{2, 5}}, {{5}}},
       [](const Ts& x) { return sub(x[0], x[1]); }},
      {"sub broadcast [4,1]-[1,3]",
       Op::Sub,
       {{{4, 1}}, {{1, 3}}},
       [](const Ts& x) { return x[0] - x[1]; }},
      {"mul same shape",
       Op::Mul,
       {{{3, 4}}, {{3, 4}}},
       [](const Ts& x) { return mul(x[0], x[1]); }},
      {"mul broadcast [2,1,4]*[3,1]",
       Op::Mul,
       {{{2, 1, 4}}, {{3, 1}}},
       [](const Ts& x) { return x[0] * x[1]; }},
      {"div broadcast [3,4]/[4]",
       Op::Div,
       {{{3, 4}}, {{4}, V::Positive}},
       [](const Ts& x) { return div(x[0], x[1]); }},
      {"div broadcast [2,1]/[1,3]",
       Op::Div,
       {{{2, 1}}, {{1, 3}, V::NonZero}},
       [](const Ts& x) { return x[0] / x[1]; }},
      {"neg", Op::Neg, {{{3, 5}}}, [](const Ts& x) { return neg(x[0]); }},
      {"exp", Op::Exp, {{{2, 3}}}, [](const Ts& x) { return exp(x[0]); }},
      {"log", Op::Log, {{{4, 3}, V::Positive}}, [](const Ts& x) { return log(x[0]); }},
      {"pow tensor exponent broadcast",
       Op::Pow,
       {{{3, 4}, V::Positive}, {{4}}},
       [](const Ts& x) { return pow(x[0], x[1]); }},
      {"pow_scalar 2.5",
       Op::PowScalar,
       {{{3, 2}, V::Positive}},
       [](const Ts& x) { return pow(x[0], 2.5); }},
      {"pow_scalar -1.5",
       Op::PowScalar,
       {{{2, 3}, V::Positive}},
       [](const Ts& x) { return pow(x[0], -1.5); }},
      {"pow_scalar 3 on signed",
       Op::PowScalar,
       {{{4}, V::NonZero}},
       [](const Ts& x) { return pow(x[0], 3.0); }},
      {"sqrt", Op::Sqrt, {{{3, 3}, V::Positive}}, [](const Ts& x) { return sqrt(x[0]); }},
      {"abs", Op::Abs, {{{2, 5}, V::NonZero}}, [](const Ts& x) { return abs(x[0]); }},
      {"clamp both bounds",
       Op::Clamp,
       {{{4, 5}, V::AwayFromHalf}},
       [](const Ts& x) { return clamp(x[0], -0.5, 0.5); }},
      {"clamp min only",
       Op::Clamp,
       {{{3, 4}, V::AwayFromHalf}},
       [](const Ts& x) { return clamp(x[0], -0.5, std::nullopt); }},
      {"clamp max only",
       Op::Clamp,
       {{{3, 4}, V::AwayFromHalf}},
       [](const Ts& x) { return clamp(x[0], std::nullopt, 0.5); }},
      {"matmul [5,3]x[3,4]",
       Op::Matmul,
       {{{5, 3}}, {{3, 4}}},
       [](const Ts& x) { return matmul(x[0], x[1]); }},
      {"matmul [3,5]^T x [3,4]",
       Op::Matmul,
       {{{3, 5}}, {{3, 4}}},
       [](const Ts& x) { return matmul(x[0], x[1], true, false); }},
      {"matmul [5,3] x [4,3]^T",
       Op::Matmul,
       {{{5, 3}}, {{4, 3}}},
       [](const Ts& x) { return matmul(x[0], x[1], false, true); }},
      {"matmul [3,5]^T x [4,3]^T",
       Op::Matmul,
       {{{3, 5}}, {{4, 3}}},
       [](const Ts& x) { return matmul(x[0], x[1], true, true); }},
      {"batched matmul [2,5,3]x[2,3,4]",
       Op::Matmul,
       {{{2, 5, 3}}, {{2, 3, 4}}},
       [](const Ts& x) { return matmul(x[0], x[1]); }},
      {"batched matmul [2,3,5]^T x [2,4,3]^T",
       Op::Matmul,
       {{{2, 3, 5}}, {{2, 4, 3}}},
       [](const Ts& x) { return matmul(x[0], x[1], true, true); }},
      {"batch x matrix [2,5,3]x[4,3]^T",
       Op::Matmul,
       {{{2, 5, 3}}, {{4, 3}}},
       [](const Ts& x) { return matmul(x[0], x[1], false, true); }},
      {"linear with bias [4,3]x[5,3]^T+[5]",
       Op::Linear,
       {{{4, 3}}, {{5, 3}}, {{5}}},
       [](const Ts& x) { return linear(x[0], x[1], x[2]); }},
      {"linear without bias",
       Op::Linear,
       {{{2, 6}}, {{3, 6}}},
       [](const Ts& x) { return linear(x[0], x[1]); }},
      {"linear, weight stored [in, out]: [4,6]x[6,3]+[3]",
       Op::Linear,
       {{{4, 6}}, {{6, 3}}, {{3}}},
       [](const Ts& x) { return linear(x[0], x[1], x[2], WeightLayout::InOut); }},
      {"conv2d 3x3 with bias",
       Op::Conv2d,
       {{{2, 3, 5, 6}}, {{4, 3, 3, 3}}, {{4}}},
       [](const Ts& x) { return conv2d(x[0], x[1], x[2]); }},
      // Stride 1 and the output as wide as the input take conv.cpp's same-width path.
      {"conv2d 3x3 padding 1 (same width)",
       Op::Conv2d,
       {{{2, 3, 5, 6}}, {{4, 3, 3, 3}}, {{4}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 1}, {1, 1}, 1});
       }},
      {"conv2d same width: 5x5 kernel, padding 2, on a 3-wide input",
       Op::Conv2d,
       {{{1, 2, 4, 3}}, {{2, 2, 5, 5}}, {{2}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{1, 1}, {2, 2}, {1, 1}, 1});
       }},
      {"conv2d same width: dilation 2, padding (1,2), groups 2",
       Op::Conv2d,
       {{{2, 4, 6, 5}}, {{4, 2, 2, 3}}, {{4}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{1, 1}, {1, 2}, {2, 2}, 2});
       }},
      {"conv2d 3x2 kernel, stride (2,1), padding (1,2)",
       Op::Conv2d,
       {{{2, 2, 7, 6}}, {{3, 2, 3, 2}}, {{3}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{2, 1}, {1, 2}, {1, 1}, 1});
       }},
      {"conv2d dilation 2, padding (2,1), no bias",
       Op::Conv2d,
       {{{1, 2, 7, 7}}, {{2, 2, 3, 3}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], Tensor(), {{1, 1}, {2, 1}, {2, 2}, 1});
       }},
      {"conv2d groups 2, stride 2, padding 1",
       Op::Conv2d,
       {{{2, 4, 5, 5}}, {{6, 2, 3, 3}}, {{6}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{2, 2}, {1, 1}, {1, 1}, 2});
       }},
      {"conv2d depthwise (groups 3), dilation (1,2), stride (1,2)",
       Op::Conv2d,
       {{{1, 3, 4, 6}}, {{3, 1, 2, 2}}, {{3}}},
       [](const Ts& x) {
         return conv2d(x[0], x[1], x[2], {{1, 2}, {0, 0}, {1, 2}, 3});
       }},
      {"max_pool2d 2x2 stride 2",
       Op::MaxPool2d,
       {{{2, 3, 4, 6}}},
       [](const Ts& x) {
         return max_pool2d(x[0], {{2, 2}, {2, 2}, {0, 0}});
       }},
      {"max_pool2d 3x3 stride 2 padding 1 (overlapping)",
       Op::MaxPool2d,
       {{{1, 2, 5, 5}}},
       [](const Ts& x) {
         return max_pool2d(x[0], {{3, 3}, {2, 2}, {1, 1}});
       }},
      {"avg_pool2d 2x2 stride 2",
       Op::AvgPool2d,
       {{{2, 2, 4, 6}}},
       [](const Ts& x) {
         return avg_pool2d(x[0], {{2, 2}, {2, 2}, {0, 0}});
       }},
      {"avg_pool2d 3x2 stride 1 padding (1,1) (overlapping)",
       Op::AvgPool2d,
       {{{1, 2, 4, 5}}},
       [](const Ts& x) {
         return avg_pool2d(x[0], {{3, 2}, {1, 1}, {1, 1}});
       }},
      {"batch_norm training [N,C] with weight and bias",
       Op::BatchNorm,
       {{{6, 3}}, {{3}}, {{3}}},
       [](const Ts& x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); }},
      {"batch_norm training [N,C,H,W], running statistics updated",
       Op::BatchNorm,
       {{{3, 2, 3, 4}}, {{2}}, {{2}}},
       [](const Ts& x) {
         const Tensor running_mean = Tensor::zeros({2}, DType::Float64);
         const Tensor running_var = Tensor::ones({2}, DType::Float64);
         return batch_norm(x[0], running_mean, running_var, x[1], x[2], true, 0.1, 1e-3);
       }},
      {"batch_norm training [N,C,L] without weight and bias",
       Op::BatchNorm,
       {{{5, 2, 3}}},
       [](const Ts& x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true); }},
      {"batch_norm eval with running statistics",
       Op::BatchNorm,
       {{{4, 3, 2, 2}}, {{3}}, {{3}}},
       [](const Ts& x) {
         const Tensor running_mean = Tensor::from_vector({0.5, -1.0, 0.25}, {3}, DType::Float64);
         const Tensor running_var = Tensor::from_vector({2.0, 0.5, 1.5}, {3}, DType::Float64);
         return batch_norm(x[0], running_mean, running_var, x[1], x[2], false);
       }},
      {"batch_norm_relu training [N,C,H,W], rows of 40 (vectors and a tail)",
       Op::BatchNormRelu,
       {{{3, 2, 5, 8}}, {{2}}, {{2}}},
       [](const Ts& x) { return batch_norm_relu(x[0], Tensor(), Tensor(), x[1], x[2], true); }},
      {"batch_norm_relu eval with running statistics",
       Op::BatchNormRelu,
       {{{4, 3, 2, 2}}, {{3}}, {{3}}},
       [](const Ts& x) {
         const Tensor running_mean = Tensor::from_vector({0.5, -1.0, 0.25}, {3}, DType::Float64);
         const Tensor running_var = Tensor::from_vector({2.0, 0.5, 1.5}, {3}, DType::Float64);
         return batch_norm_relu(x[0], running_mean, running_var, x[1], x[2], false);
       }},
      {"batch_norm_relu_max_pool2d training, odd height and width",
       Op::BatchNormReluMaxPool2d,
       {{{3, 2, 5, 7}}, {{2}}, {{2}}},
       [](const Ts& x) {
         return batch_norm_relu_max_pool2d(x[0], Tensor(), Tensor(), x[1], x[2], true);
       }},
      {"batch_norm_relu_max_pool2d eval with running statistics",
       Op::BatchNormReluMaxPool2d,
       {{{2, 3, 4, 6}}, {{3}}, {{3}}},
       [](const Ts& x) {
         const Tensor running_mean = Tensor::from_vector({0.5, -1.0, 0.25}, {3}, DType::Float64);
         const Tensor running_var = Tensor::from_vector({2.0, 0.5, 1.5}, {3}, DType::Float64);
         return batch_norm_relu_max_pool2d(x[0], running_mean, running_var, x[1], x[2], false);
       }},
      {"layer_norm [4,6] with weight and bias",
       Op::LayerNorm,
       {{{4, 6}}, {{6}}, {{6}}},
       [](const Ts& x) { return layer_norm(x[0], x[1], x[2]); }},
      {"layer_norm [2,3,5] weight only, eps 1e-3",
       Op::LayerNorm,
       {{{2, 3, 5}}, {{5}}},
       [](const Ts& x) { return layer_norm(x[0], x[1], Tensor(), 1e-3); }},
      {"layer_norm [3,4] without weight and bias",
       Op::LayerNorm,
       {{{3, 4}}},
       [](const Ts& x) { return layer_norm(x[0], Tensor(), Tensor()); }},
      {"causal_attention 2 heads, B 2, T 5, C 4",
       Op::CausalAttention,
       {{{2, 5, 12}}},
       [](const Ts& x) { return causal_attention(x[0], 2); }},
      {"causal_attention 3 heads of width 1, T 4",
       Op::CausalAttention,
       {{{1, 4, 9}}},
       [](const Ts& x) { return causal_attention(x[0], 3); }},
      {"causal_attention 1 head of width 3, T 6",
       Op::CausalAttention,
       {{{2, 6, 9}}},
       [](const Ts& x) { return causal_attention(x[0], 1); }},
      {"causal_attention in blocks of 2, 2 heads, B 2, T 5",
       Op::CausalAttention,
       {{{2, 5, 12}}},
       [](const Ts& x) { return detail::causal_attention_blocked(x[0], 2, 2); }},
      {"causal_attention in blocks of 3, 1 head of width 3, T 7",
       Op::CausalAttention,
       {{{1, 7, 9}}},
       [](const Ts& x) { return detail::causal_attention_blocked(x[0], 1, 3); }},
      {"causal_attention of 70 positions (blocked by default), 1 head of width 2",
       Op::CausalAttention,
       {{{1, 70, 6}}},
       [](const Ts& x) { return causal_attention(x[0], 1); }},
      {"sum all", Op::Sum, {{{3, 4}}}, [](const Ts& x) { return sum(x[0]); }},
      {"sum axis 1", Op::Sum, {{{3, 4}}}, [](const Ts& x) { return sum(x[0], {1}); }},
      {"sum axes 0,2 keepdim",
       Op::Sum,
       {{{2, 3, 4}}},
       [](const Ts& x) {
         return sum(x[0], {0, 2}, true);
       }},
      {"sum axis -1", Op::Sum, {{{2, 3, 4}}}, [](const Ts& x) { return sum(x[0], {-1}); }},
      {"mean all", Op::Mean, {{{3, 4}}}, [](const Ts& x) { return mean(x[0]); }},
      {"mean axis -1 keepdim",
       Op::Mean,
       {{{2, 3, 4}}},
       [](const Ts& x) { return mean(x[0], {-1}, true); }},
      {"mean axes 0,1",
       Op::Mean,
       {{{2, 3, 4}}},
       [](const Ts& x) {
         return mean(x[0], {0, 1});
       }},
      {"max axis 1", Op::Max, {{{3, 5}}}, [](const Ts& x) { return max(x[0], 1); }},
      {"max axis 0 keepdim", Op::Max, {{{4, 3}}}, [](const Ts& x) { return max(x[0], 0, true); }},
      {"max axis 1 of 3-D", Op::Max, {{{2, 4, 3}}}, [](const Ts& x) { return max(x[0], 1); }},
      {"reshape [2,6]->[3,-1]",
       Op::Reshape,
       {{{2, 6}}},
       [](const Ts& x) {
         return reshape(x[0], {3, -1});
       }},
      {"permute [2,3,4] by (2,0,1)",
       Op::Permute,
       {{{2, 3, 4}}},
       [](const Ts& x) {
         return permute(x[0], {2, 0, 1});
       }},
      {"transpose [3,5]",
       Op::Permute,
       {{{3, 5}}},
       [](const Ts& x) { return transpose(x[0], 0, 1); }},
      {"slice axis 1 [1:4]",
       Op::Slice,
       {{{3, 5}}},
       [](const Ts& x) { return slice(x[0], 1, 1, 4); }},
      {"slice axis 0 step 2",
       Op::Slice,
       {{{5, 2}}},
       [](const Ts& x) { return slice(x[0], 0, 0, 5, 2); }},
      {"slice negative start",
       Op::Slice,
       {{{2, 6, 2}}},
       [](const Ts& x) { return slice(x[0], 1, -3, 6); }},
      {"concat axis 0",
       Op::Concat,
       {{{2, 3}}, {{1, 3}}, {{3, 3}}},
       [](const Ts& x) { return concat(x, 0); }},
      {"concat axis 1",
       Op::Concat,
       {{{2, 2, 3}}, {{2, 4, 3}}},
       [](const Ts& x) { return concat(x, 1); }},
      {"index_select axis 0 repeated",
       Op::IndexSelect,
       {{{4, 3}}},
       [](const Ts& x) {
         return index_select(x[0], 0, indices({3, 0, 3, 1}, {4}));
       }},
      {"index_select axis 1",
       Op::IndexSelect,
       {{{2, 5, 2}}},
       [](const Ts& x) {
         return index_select(x[0], 1, indices({4, 2}, {2}));
       }},
      {"gather axis 1",
       Op::Gather,
       {{{3, 4}}},
       [](const Ts& x) {
         return gather(x[0], 1, indices({0, 3, 1, 1, 2, 0}, {3, 2}));
       }},
      {"gather axis 0",
       Op::Gather,
       {{{3, 2}}},
       [](const Ts& x) {
         return gather(x[0], 0, indices({2, 0, 1, 1, 0, 0, 2, 2}, {4, 2}));
       }},
      {"relu", Op::Relu, {{{4, 5}, V::NonZero}}, [](const Ts& x) { return relu(x[0]); }},
      {"leaky_relu",
       Op::LeakyRelu,
       {{{4, 5}, V::NonZero}},
       [](const Ts& x) { return leaky_relu(x[0], 0.1); }},
      {"sigmoid", Op::Sigmoid, {{{3, 4}}}, [](const Ts& x) { return sigmoid(x[0]); }},
      {"tanh", Op::Tanh, {{{3, 4}}}, [](const Ts& x) { return tanh(x[0]); }},
      {"gelu exact", Op::Gelu, {{{3, 4}}}, [](const Ts& x) { return gelu(x[0]); }},
      {"gelu tanh",
       Op::GeluTanh,
       {{{3, 4}}},
       [](const Ts& x) { return gelu(x[0], GeluApproximation::Tanh); }},
      {"softmax last axis", Op::Softmax, {{{3, 5}}}, [](const Ts& x) { return softmax(x[0], -1); }},
      {"softmax axis 0 of 3-D",
       Op::Softmax,
       {{{4, 3, 2}}},
       [](const Ts& x) { return softmax(x[0], 0); }},
      {"log_softmax axis 1",
       Op::LogSoftmax,
       {{{3, 5}}},
       [](const Ts& x) { return log_softmax(x[0], 1); }},
      {"log_softmax axis 1 of 3-D",
       Op::LogSoftmax,
       {{{2, 4, 3}}},
       [](const Ts& x) { return log_softmax(x[0], 1); }},
      {"mse_loss",
       Op::MseLoss,
       {{{4, 3}}, {{4, 3}}},
       [](const Ts& x) { return mse_loss(x[0], x[1]); }},
      {"cross_entropy",
       Op::CrossEntropy,
       {{{5, 4}}},
       [targets5](const Ts& x) { return cross_entropy(x[0], targets5); }},
      {"cross_entropy with class weights",
       Op::CrossEntropy,
       {{{5, 4}}},
       [targets5, class_weights](const Ts& x) {
         return cross_entropy(x[0], targets5, class_weights);
       }},
      {"cross_entropy with label smoothing",
       Op::CrossEntropy,
       {{{5, 4}}},
       [targets5](const Ts& x) { return cross_entropy(x[0], targets5, Tensor(), 0.1); }},
      {"cross_entropy with class weights and label smoothing",
       Op::CrossEntropy,
       {{{5, 4}}},
       [targets5, class_weights](const Ts& x) {
         return cross_entropy(x[0], targets5, class_weights, 0.25);
       }},
      {"nll_loss",
       Op::NllLoss,
       {{{5, 4}}},
       [targets5](const Ts& x) { return nll_loss(x[0], targets5); }},
      {"nll_loss with class weights",
       Op::NllLoss,
       {{{5, 4}}},
       [targets5, class_weights](const Ts& x) { return nll_loss(x[0], targets5, class_weights); }},
      {"binary_cross_entropy_with_logits",
       Op::BinaryCrossEntropyWithLogits,
       {{{3, 4}}, {{3, 4}, V::UnitInterval}},
       [](const Ts& x) { return binary_cross_entropy_with_logits(x[0], x[1]); }},
  };
}

void PrintTo(const GradcheckCase& c, std::ostream* out) {
  *out << c.name;
}

class Gradcheck : public ::testing::TestWithParam<GradcheckCase> {};

TEST_P(Gradcheck, AnalyticalGradientMatchesCentralDifferences) {
  const GradcheckCase& c = GetParam();
  Generator generator(42);
  std::vector<Tensor> inputs;
  for (const Input& spec : c.inputs) inputs.push_back(make_input(spec, generator));
  const GradcheckResult result = gradcheck(c.f, inputs);
  EXPECT_TRUE(result.passed) << c.name << "\n" << result.failures;
  EXPECT_TRUE(result.ops_in_graph.count(c.op))
      << c.name << ": the graph does not contain op '" << op_name(c.op) << "'";
}

std::string case_name(const ::testing::TestParamInfo<GradcheckCase>& info) {
  std::string name;
  for (char ch : info.param.name) name += std::isalnum(static_cast<unsigned char>(ch)) ? ch : '_';
  return name + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(Table, Gradcheck, ::testing::ValuesIn(table()), case_name);

TEST(GradcheckTable, EveryDifferentiableOpHasAnEntry) {
  std::set<Op> covered;
  for (const GradcheckCase& c : table()) covered.insert(c.op);
  for (Op op : all_differentiable_ops())
    EXPECT_TRUE(covered.count(op))
        << "differentiable op '" << op_name(op) << "' has no entry in the gradcheck table";
}

// The checker itself must be able to fail: an op whose backward is off by a factor of two.
TEST(GradcheckTable, CheckerRejectsAWrongGradient) {
  const OpFunction wrong_exp = [](const std::vector<Tensor>& x) {
    Tensor out;
    {
      NoGradGuard no_grad;
      out = exp(x[0]);
    }
    if (!should_record({&x[0]})) return out;
    return record(Op::Exp, out, {x[0]},
                  [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
                    return std::vector<Tensor>{g * out * 2.0};
                  });
  };
  Generator generator(3);
  const GradcheckResult result =
      gradcheck(wrong_exp, {Tensor::randn({3}, generator, DType::Float64)});
  EXPECT_FALSE(result.passed);
  EXPECT_NE(result.failures.find("analytical"), std::string::npos);
}

}  // namespace
}  // namespace lathe::testing
