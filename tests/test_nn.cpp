// Modules: parameter naming, state_dict round trips and their errors, train/eval, the registry.
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

nlohmann::json mlp_spec() {
  return nlohmann::json::parse(R"([
    {"type": "flatten"}, {"type": "linear", "in": 6, "out": 4}, {"type": "relu"},
    {"type": "dropout", "p": 0.25}, {"type": "linear", "in": 4, "out": 3, "bias": false}])");
}

TEST(Module, NamesAreStableAndStateDictRoundTrips) {
  Generator g(1);
  auto model = make_sequential(mlp_spec(), g);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : model->named_parameters()) names.push_back(name);
  EXPECT_EQ(names, (std::vector<std::string>{"1.weight", "1.bias", "4.weight"}));
  EXPECT_EQ(model->parameter_count(), 6 * 4 + 4 + 4 * 3);
  for (const Tensor& p : model->parameters()) EXPECT_TRUE(p.requires_grad());

  Generator other(2);
  auto copy = make_sequential(mlp_spec(), other);
  copy->load_state_dict(model->state_dict());
  copy->eval();
  model->eval();
  const Tensor x = Tensor::randn({5, 2, 3}, g);
  EXPECT_EQ(model->forward(x).to_vector(), copy->forward(x).to_vector());
  // The spec rebuilds the same architecture.
  auto rebuilt = make_layer(model->spec(), other);
  EXPECT_EQ(rebuilt->spec(), model->spec());
}

TEST(Module, LoadStateDictErrorsNameTheEntry) {
  Generator g(1);
  auto model = make_sequential(mlp_spec(), g);
  auto state = model->state_dict();
  state.erase("1.bias");
  EXPECT_EQ(error_of([&] { model->load_state_dict(state); }),
            "load_state_dict: missing entry '1.bias' of shape [4]");
  state = model->state_dict();
  state["9.weight"] = Tensor::zeros({1});
  EXPECT_EQ(error_of([&] { model->load_state_dict(state); }),
            "load_state_dict: unexpected entry '9.weight' (the model has no such parameter or "
            "buffer)");
  state = model->state_dict();
  state["4.weight"] = Tensor::zeros({4, 3});
  EXPECT_EQ(error_of([&] { model->load_state_dict(state); }),
            "load_state_dict: '4.weight' has shape [4,3] but the model expects [3,4]");
}

TEST(Module, LinearMatchesItsFormulaAndInitBound) {
  Generator g(3);
  Linear layer(5, 2, true, g);
  for (double w : layer.weight().to_vector()) EXPECT_LE(std::abs(w), 1 / std::sqrt(5.0));
  const Tensor weight = layer.state_dict().at("weight");  // [out, in], whatever the layout
  ASSERT_EQ(weight.shape(), (Shape{2, 5}));
  const Tensor x = Tensor::randn({3, 5}, g);
  const Tensor y = layer(x);
  for (std::int64_t i = 0; i < 3; ++i)
    for (std::int64_t o = 0; o < 2; ++o) {
      double expected = layer.bias().at({o});
      for (std::int64_t k = 0; k < 5; ++k) expected += x.at({i, k}) * weight.at({o, k});
      EXPECT_NEAR(y.at({i, o}), expected, 1e-5);
    }
  EXPECT_EQ(layer(Tensor::randn({2, 4, 5}, g)).shape(), (Shape{2, 4, 2}));
  EXPECT_EQ(error_of([&] {
              layer(Tensor::zeros({3, 4}));
            }),
            "linear(5->2): input of shape [3,4] does not end in 5 features");
}

TEST(Module, LinearStoresNarrowingWeightsInOutAndSavesThemOutIn) {
  Generator g(1);
  EXPECT_EQ(Linear(784, 128, true, g).layout(), WeightLayout::InOut);
  EXPECT_EQ(Linear(128, 64, true, g).layout(), WeightLayout::InOut);
  EXPECT_EQ(Linear(784, 1024, true, g).layout(), WeightLayout::OutIn);
  EXPECT_EQ(Linear(100, 51, true, g).layout(), WeightLayout::OutIn);

  Generator g1(7), g2(7);
  Linear in_out(9, 4, true, g1), out_in(9, 4, true, g2, DType::Float32, WeightLayout::OutIn);
  ASSERT_EQ(in_out.layout(), WeightLayout::InOut);
  EXPECT_EQ(in_out.weight().shape(), (Shape{9, 4}));
  EXPECT_EQ(out_in.weight().shape(), (Shape{4, 9}));
  // One seed, one layer: the same draws, the same saved state, the same function and gradients.
  const auto saved_in_out = in_out.state_dict(), saved_out_in = out_in.state_dict();
  EXPECT_EQ(saved_in_out.at("weight").shape(), (Shape{4, 9}));
  EXPECT_EQ(saved_in_out.at("weight").to_vector(), saved_out_in.at("weight").to_vector());
  EXPECT_EQ(saved_in_out.at("bias").to_vector(), saved_out_in.at("bias").to_vector());
  // The two layouts run different GEMM kernels, which may add in another order.
  const auto expect_near = [](const Tensor& a, const Tensor& b) {
    const std::vector<double> av = a.to_vector(), bv = b.to_vector();
    ASSERT_EQ(av.size(), bv.size());
    for (std::size_t i = 0; i < av.size(); ++i) EXPECT_NEAR(av[i], bv[i], 1e-5) << "at " << i;
  };
  const Tensor x = Tensor::randn({6, 9}, g1);
  sum(in_out(x)).backward();
  sum(out_in(x)).backward();
  expect_near(in_out(x), out_in(x));
  expect_near(transpose(in_out.weight().grad(), 0, 1), out_in.weight().grad());

  // Loading saved [out, in] weights into an [in, out] layer transposes them back.
  Generator g3(99);
  Linear other(9, 4, true, g3);
  other.load_state_dict(saved_out_in);
  EXPECT_EQ(other.weight().to_vector(), in_out.weight().to_vector());
  expect_near(other(x), out_in(x));
}

TEST(Module, DropoutTrainsAndEvaluatesDifferently) {
  Dropout dropout(0.5);
  const Tensor x = Tensor::ones({1000});
  const auto trained = dropout(x).to_vector();
  int zeros = 0;
  for (double v : trained) {
    EXPECT_TRUE(v == 0 || v == 2);
    zeros += v == 0;
  }
  EXPECT_NEAR(zeros, 500, 80);
  dropout.eval();
  EXPECT_EQ(dropout(x).to_vector(), x.to_vector());
  EXPECT_THROW(Dropout(1.0), Error);
}

TEST(Registry, UnknownTypesAndKeysListWhatIsAllowed) {
  Generator g(0);
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "lineer"}}, g);
            }),
            "unknown layer type 'lineer'; known types: linear, conv2d, max_pool2d, avg_pool2d, "
            "global_avg_pool, batch_norm1d, batch_norm2d, reshape, flatten, dropout, relu, "
            "leaky_relu, sigmoid, tanh, gelu, gpt, onnx_graph");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "linear"}, {"in", 3}, {"outs", 2}}, g);
            }),
            "layer 'linear': unknown key 'outs'; allowed: in, out, bias");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "linear"}, {"in", 3}}, g);
            }),
            "layer 'linear': missing required key 'out' (output features)");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "linear"}, {"in", 3}, {"out", 2.5}}, g);
            }),
            "layer 'linear': 'out' must be an integer, got 2.5");
  EXPECT_EQ(error_of([&] {
              make_layer({{"type", "relu"}, {"inplace", true}}, g);
            }),
            "layer 'relu': unknown key 'inplace'; allowed: (none)");
  EXPECT_EQ(error_of([&] {
              make_sequential(nlohmann::json::array({{{"type", "tanh"}}, {{"type", "x"}}}), g);
            }),
            "layer 1: unknown layer type 'x'; known types: linear, conv2d, max_pool2d, avg_pool2d, "
            "global_avg_pool, batch_norm1d, batch_norm2d, reshape, flatten, dropout, relu, "
            "leaky_relu, sigmoid, tanh, gelu, gpt, onnx_graph");
  // Every registered type builds from its example spec, and the spec it gives back rebuilds it.
  for (const LayerType& type : layer_types()) {
    const nlohmann::json spec =
        type.example.empty() ? nlohmann::json{{"type", type.name}} : type.example;
    auto layer = make_layer(spec, g);
    EXPECT_EQ(layer->type(), type.name);
    EXPECT_EQ(why_not_rebuildable(*layer), std::nullopt) << type.name;
  }
}

}  // namespace
}  // namespace lathe
