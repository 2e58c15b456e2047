// Int8 inference: one layer's outputs stay within the error its quantization allows (derived
// below, not fitted), the VNNI sweep gives exactly the portable loop's sums, bad input is handled,
// and a quantized plan, Predictor and `lathe eval` agree with float32 on a trained classifier.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "lathe/lathe.h"
#include "src/deploy/int8_linear.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using detail::Int8Linear;
using testing::error_of;

struct Layer {
  std::int64_t in, out;
  std::vector<float> weight, bias, x;  // weight [in, out]
};

Layer random_layer(std::int64_t in, std::int64_t out, std::mt19937& random, float x_low,
                   float x_high) {
  Layer layer{in, out, {}, {}, {}};
  std::uniform_real_distribution<float> w(-0.5f, 0.5f), x(x_low, x_high);
  for (std::int64_t i = 0; i < in * out; ++i) layer.weight.push_back(w(random));
  for (std::int64_t o = 0; o < out; ++o) layer.bias.push_back(w(random));
  for (std::int64_t j = 0; j < in; ++j) layer.x.push_back(x(random));
  return layer;
}

// With x = s_x (q_x - z) + e, |e| <= s_x / 2, and w = s_w q_w + d, |d| <= s_w / 2, the sum's
// error is at most sum_j |e_j| |s_w q_w| + |x_j - e_j| |d_j| + |e_j| |d_j|; the float32 steps
// after it add a relative rounding of a few units.
void expect_within_quantization_error(const Layer& layer, bool relu) {
  const Int8Linear quantized(layer.weight.data(), layer.out, layer.bias.data(), layer.in, layer.out,
                             relu);
  std::vector<float> y(static_cast<std::size_t>(layer.out));
  quantized.forward_row(layer.x.data(), y.data());
  float lo = 0, hi = 0;
  for (float v : layer.x) lo = std::min(lo, v), hi = std::max(hi, v);
  const double s_x = (hi - lo) / 255.0;
  for (std::int64_t o = 0; o < layer.out; ++o) {
    double largest = 0, exact = layer.bias[o], bound = 0, magnitude = std::abs(layer.bias[o]);
    for (std::int64_t j = 0; j < layer.in; ++j)
      largest = std::max(largest, double(std::abs(layer.weight[j * layer.out + o])));
    const double s_w = largest / 127;
    for (std::int64_t j = 0; j < layer.in; ++j) {
      const double w = layer.weight[j * layer.out + o], x = layer.x[j];
      exact += w * x;
      magnitude += std::abs(w * x);
      bound +=
          s_x / 2 * (std::abs(w) + s_w / 2) + (std::abs(x) + s_x / 2) * s_w / 2 + s_x * s_w / 4;
    }
    if (relu) exact = std::max(exact, 0.0);
    bound += 1e-5 * magnitude;
    EXPECT_NEAR(y[o], exact, bound) << layer.in << "->" << layer.out << " output " << o;
  }
}

TEST(Int8Linear, OutputsWithinTheirQuantizationError) {
  std::mt19937 random(11);
  // Inputs of both signs (a zero point inside the range), all positive (after a relu), all
  // negative; widths with a partial group of 4, a partial vector, and more than one 128 tile.
  expect_within_quantization_error(random_layer(784, 128, random, -1, 1), false);
  expect_within_quantization_error(random_layer(37, 19, random, 0, 3), true);
  expect_within_quantization_error(random_layer(5, 200, random, -2, -0.5f), false);
  expect_within_quantization_error(random_layer(1, 1, random, -1, 1), true);
}

TEST(Int8Linear, VnniSweepGivesThePortableLoopsOutputs) {
  std::mt19937 random(12);
  for (const auto& [in, out] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {784, 128}, {128, 64}, {64, 10}, {33, 257}, {3, 16}, {130, 1}}) {
    for (const bool relu : {false, true}) {
      const Layer layer = random_layer(in, out, random, -3, 2);
      const Int8Linear quantized(layer.weight.data(), out, layer.bias.data(), in, out, relu);
      std::vector<float> fast(static_cast<std::size_t>(out)), portable(fast.size());
      quantized.forward_row(layer.x.data(), fast.data());
      quantized.forward_row(layer.x.data(), portable.data(), /*portable=*/true);
      for (std::int64_t o = 0; o < out; ++o)
        ASSERT_EQ(fast[o], portable[o]) << in << "->" << out << " output " << o;
    }
  }
}

TEST(Int8Linear, ZeroInputsGiveTheBiasAndNonFiniteOnesNaN) {
  std::mt19937 random(13);
  Layer layer = random_layer(20, 3, random, -1, 1);
  const Int8Linear quantized(layer.weight.data(), 3, layer.bias.data(), 20, 3, false);
  std::vector<float> y(3);
  std::fill(layer.x.begin(), layer.x.end(), 0.0f);
  quantized.forward_row(layer.x.data(), y.data());
  for (int o = 0; o < 3; ++o) EXPECT_EQ(y[o], layer.bias[o]);
  for (const float bad :
       {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    layer.x[17] = bad;
    quantized.forward_row(layer.x.data(), y.data());
    for (int o = 0; o < 3; ++o) EXPECT_TRUE(std::isnan(y[o])) << bad;
  }
}

TEST(Int8Linear, ExtremeButFiniteRangesGiveNoNaN) {
  std::mt19937 random(16);
  Layer layer = random_layer(40, 20, random, -1, 1);
  const Int8Linear quantized(layer.weight.data(), 20, layer.bias.data(), 40, 20, false);
  std::vector<float> fast(20), portable(20);
  // Values spanning under 1e-36 are taken as zeros; values near float's limit overflow to an
  // infinity at worst, never to NaN; both ways the two sweeps agree.
  for (const float magnitude : {1e-38f, 3e38f}) {
    for (std::int64_t j = 0; j < 40; ++j) layer.x[j] = (j % 3 == 0 ? -magnitude : magnitude);
    quantized.forward_row(layer.x.data(), fast.data());
    quantized.forward_row(layer.x.data(), portable.data(), /*portable=*/true);
    for (int o = 0; o < 20; ++o) {
      EXPECT_FALSE(std::isnan(fast[o])) << magnitude << " output " << o;
      EXPECT_EQ(fast[o], portable[o]) << magnitude << " output " << o;
      if (magnitude < 1) {
        EXPECT_EQ(fast[o], layer.bias[o]);
      }
    }
  }
}

TEST(Int8Linear, RefusesNonFiniteWeightsAndScalesTinyOnesToZero) {
  std::vector<float> weight{0.5f, std::numeric_limits<float>::infinity(), 1e-44f, -1e-44f};
  EXPECT_EQ(error_of([&] { Int8Linear(weight.data(), 2, nullptr, 2, 2, false); }),
            "int8 inference: weight [0, 1] (input, output) of a linear layer is inf; it cannot "
            "be quantized");
  weight = {1e-44f, -1e-44f, 2e-45f, 0.0f};  // subnormal: a scale of largest / 127 is 0
  const std::vector<float> bias{0.25f, -0.5f}, x{3.0f, -1.0f};
  const Int8Linear tiny(weight.data(), 2, bias.data(), 2, 2, false);
  std::vector<float> y(2);
  tiny.forward_row(x.data(), y.data());
  EXPECT_EQ(y[0], 0.25f);
  EXPECT_EQ(y[1], -0.5f);
}

TEST(Int8Linear, RefusesALayerWhoseSumsCouldOverflow) {
  const std::int64_t in = Int8Linear::kMaxInputs + 1;
  const std::vector<float> weight(static_cast<std::size_t>(in), 0.5f);
  EXPECT_EQ(error_of([&] { Int8Linear(weight.data(), 1, nullptr, in, 1, false); }),
            "int8 inference: a linear layer with 32769 inputs (at most 32768: more could "
            "overflow its int32 sums)");
}

std::shared_ptr<Module> mlp(Generator& g) {
  auto model = make_sequential(nlohmann::json::parse(R"([
    {"type": "flatten"},
    {"type": "linear", "in": 30, "out": 40}, {"type": "relu"},
    {"type": "linear", "in": 40, "out": 24},
    {"type": "linear", "in": 24, "out": 5, "bias": false}, {"type": "tanh"}])"),
                               g);
  model->eval();
  return model;
}

TEST(Int8Plan, EachRowOfABatchIsQuantizedOnItsOwn) {
  Generator g(14);
  auto model = mlp(g);
  const auto plan = InferencePlan::compile(model, InferencePrecision::Int8);
  ASSERT_TRUE(plan.has_value());
  EXPECT_EQ(plan->precision(), InferencePrecision::Int8);
  const Tensor batch = Tensor::randn({6, 5, 6}, g) * 3.0;
  const Tensor together = plan->forward(batch);
  ASSERT_EQ(together.shape(), (Shape{6, 5}));
  const std::vector<double> all = together.to_vector();
  for (std::int64_t r = 0; r < 6; ++r) {
    const std::vector<double> alone = plan->forward(slice(batch, 0, r, r + 1)).to_vector();
    for (std::int64_t c = 0; c < 5; ++c) EXPECT_EQ(alone[c], all[r * 5 + c]) << r << "," << c;
  }
  // An empty batch gives an empty answer, in both precisions.
  for (const InferencePrecision precision : {InferencePrecision::Float32, InferencePrecision::Int8})
    EXPECT_EQ(InferencePlan::compile(model, precision)->forward(Tensor::zeros({0, 5, 6})).shape(),
              (Shape{0, 5}));
  EXPECT_EQ(error_of([&] {
              plan->forward(Tensor::zeros({2, 31}));
            }),
            "linear(30->40): input of shape [2,31] (float32) does not end in 30 float32 features");
}

TEST(Int8Plan, ModelsWithoutAPlanAreRefusedByName) {
  EXPECT_EQ(precision_from_name("int8"), InferencePrecision::Int8);
  EXPECT_EQ(error_of([] { precision_from_name("fp16"); }),
            "unknown inference precision \"fp16\": expected float32 or int8");
  Generator g(15);
  auto single = make_layer({{"type", "linear"}, {"in", 2}, {"out", 2}}, g);
  LoadedBundle bundle{single,
                      {single->spec(), {}, {{"input_shape", {2}}}, nlohmann::json::object()}};
  const std::string error = error_of([&] { Predictor(bundle, InferencePrecision::Int8); });
  EXPECT_NE(error.find("cannot run in int8"), std::string::npos) << error;
  EXPECT_NO_THROW(Predictor(bundle, InferencePrecision::Float32));
}

}  // namespace
}  // namespace lathe
