// The GPT: one training step against PyTorch's golden values (tests/fixtures/gpt_reference.json,
// written by tools/gpt_reference.py), its configuration checks, and generation with a KV cache
// against generation without one. Op gradients are checked in tests/test_gradcheck.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::error_of;

json gpt_reference_cases() {
  std::ifstream in(LATHE_SOURCE_DIR "/tests/fixtures/gpt_reference.json");
  EXPECT_TRUE(in) << "missing tests/fixtures/gpt_reference.json";
  return json::parse(in)["cases"];
}

Tensor gpt_tensor_of(const json& t, DType dtype) {
  return Tensor::from_vector(t["values"].get<std::vector<double>>(), t["shape"].get<Shape>(),
                             dtype);
}

Tensor tokens_of(const json& rows) {
  std::vector<std::int64_t> values;
  for (const auto& row : rows)
    for (const auto& v : row) values.push_back(v.get<std::int64_t>());
  return Tensor::from_indices(
      values, {static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())});
}

// The largest difference relative to the largest reference value of the tensor: float32
// rounding of small entries does not count against a tensor whose scale is much larger.
double relative_error(const Tensor& actual, const json& expected) {
  const auto want = expected["values"].get<std::vector<double>>();
  const auto got = actual.to_vector();
  EXPECT_EQ(got.size(), want.size());
  double diff = 0, scale = 0;
  for (std::size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    diff = std::max(diff, std::abs(got[i] - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return diff / scale;
}

void check_against_pytorch(DType dtype, double tolerance) {
  for (const json& c : gpt_reference_cases()) {
    SCOPED_TRACE(c["name"].get<std::string>() + " " + dtype_name(dtype));
    Generator generator(1);
    GPT model(GPTConfig::from_json(c["config"]), generator, dtype);
    std::map<std::string, Tensor> state;
    for (const auto& [name, value] : c["parameters"].items())
      state[name] = gpt_tensor_of(value, dtype);
    model.load_state_dict(state);
    const Tensor tokens = tokens_of(c["tokens"]), targets = tokens_of(c["targets"]);

    EXPECT_LE(relative_error(model.forward(tokens), c["logits"]), tolerance) << "logits";
    const Tensor loss = model.loss(tokens, targets);
    EXPECT_LE(std::abs(loss.item() - c["loss"].get<double>()) / c["loss"].get<double>(), tolerance);
    loss.backward();
    std::size_t checked = 0;
    for (const NamedTensor& p : model.named_parameters()) {
      ASSERT_TRUE(c["gradients"].contains(p.name)) << p.name;
      ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
      EXPECT_LE(relative_error(p.tensor.grad(), c["gradients"][p.name]), tolerance) << p.name;
      ++checked;
    }
    EXPECT_EQ(checked, c["gradients"].size());
  }
}

TEST(GPTReference, LossLogitsAndEveryGradientMatchPyTorchInFloat64) {
  check_against_pytorch(DType::Float64, 1e-9);
}

TEST(GPTReference, LossLogitsAndEveryGradientMatchPyTorchInFloat32) {
  check_against_pytorch(DType::Float32, 1e-4);
}

GPTConfig small_config() {
  GPTConfig config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 8;
  config.vocab_size = 13;
  return config;
}

TEST(GPT, ParameterNamesAndShapesFollowTheConfig) {
  Generator generator(3);
  GPT model(small_config(), generator);
  const auto expected = small_config().parameter_shapes();
  const auto actual = model.named_parameters();
  ASSERT_EQ(actual.size(), expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    EXPECT_EQ(actual[i].name, expected[i].first);
    EXPECT_EQ(actual[i].tensor.shape(), expected[i].second) << actual[i].name;
  }
  EXPECT_EQ(model.spec()["type"], "gpt");
  EXPECT_EQ(GPTConfig::from_json(model.spec()).to_json(), small_config().to_json());
}

TEST(GPT, WithoutBiasHasNoBiasTensors) {
  GPTConfig config = small_config();
  config.bias = false;
  Generator generator(3);
  GPT model(config, generator);
  for (const NamedTensor& p : model.named_parameters())
    EXPECT_FALSE(p.name.ends_with(".bias")) << p.name;
  EXPECT_EQ(model.named_parameters().size(), config.parameter_shapes().size());
}

TEST(GPT, InitializationIsGPT2s) {
  GPTConfig config = small_config();
  config.n_embd = 64;
  Generator generator(5);
  GPT model(config, generator);
  const auto std_of = [](const Tensor& t) {
    double squares = 0;
    for (double v : t.to_vector()) squares += v * v;
    return std::sqrt(squares / static_cast<double>(t.numel()));
  };
  const auto state = model.state_dict();
  EXPECT_NEAR(std_of(state.at("wte.weight")), 0.02, 0.002);
  EXPECT_NEAR(std_of(state.at("blocks.0.fc.weight")), 0.02, 0.002);
  EXPECT_NEAR(std_of(state.at("blocks.1.fcproj.weight")), 0.01, 0.001);  // 0.02 / sqrt(2 * 2)
  EXPECT_NEAR(std_of(state.at("blocks.1.proj.weight")), 0.01, 0.001);
  EXPECT_EQ(state.at("blocks.0.qkv.bias").to_vector(), std::vector<double>(192, 0.0));
  EXPECT_EQ(state.at("lnf.weight").to_vector(), std::vector<double>(64, 1.0));

  config.scaled_residual_init = false;  // torch_gpt.py's: 0.02 everywhere
  Generator again(5);
  const auto plain = GPT(config, again).state_dict();
  EXPECT_NEAR(std_of(plain.at("blocks.1.fcproj.weight")), 0.02, 0.002);
  EXPECT_NEAR(std_of(plain.at("blocks.1.proj.weight")), 0.02, 0.002);
  EXPECT_EQ(plain.at("wte.weight").to_vector(), state.at("wte.weight").to_vector());
}

TEST(GPT, BadConfigurationsAndInputsAreErrors) {
  json spec = GPT(small_config(), default_generator()).spec();
  spec["n_head"] = 3;
  EXPECT_EQ(error_of([&] { GPTConfig::from_json(spec); }),
            "gpt: n_embd 16 must be a multiple of n_head 3");
  spec["n_head"] = 2;
  spec["n_layer"] = "4";
  EXPECT_EQ(error_of([&] { GPTConfig::from_json(spec); }),
            "gpt: 'n_layer' must be an integer, got \"4\"");
  spec["n_layer"] = 2;
  spec["heads"] = 2;
  EXPECT_EQ(error_of([&] { GPTConfig::from_json(spec); }), "gpt: unknown key 'heads'");
  spec.erase("heads");
  spec["n_embd"] = 1 << 20;
  spec["n_layer"] = 1000;
  EXPECT_NE(error_of([&] { GPTConfig::from_json(spec); }).find("parameters"), std::string::npos);

  Generator generator(1);
  GPT model(small_config(), generator);
  EXPECT_EQ(error_of([&] {
              model.forward(Tensor::zeros({1, 9}, DType::Int64));
            }),
            "gpt: sequence length 9 is outside [1, block_size 8]");
  EXPECT_NE(error_of([&] { model.forward(Tensor::full({1, 4}, 13, DType::Int64)); }), "(no error)");
  EXPECT_EQ(error_of([&] {
              model.forward(Tensor::zeros({1, 4}));
            }),
            "gpt: tokens must be int64 [batch, time], got float32 [1,4]");
}

// A model whose weights are large enough that its next-token distributions are far from
// uniform, so a wrong cache would change the sampled tokens.
GPT peaked_model(DType dtype = DType::Float32) {
  Generator generator(11);
  GPT model(small_config(), generator, dtype);
  for (const NamedTensor& p : model.named_parameters()) {
    Tensor t = p.tensor;
    if (!p.name.ends_with("ln1.weight") && !p.name.ends_with("ln2.weight"))
      normal_(t, 0.0, 0.5, generator);
  }
  return model;
}

TEST(GPTGenerate, CachedGenerationEqualsUncachedTokenForToken) {
  GPT model = peaked_model();
  const std::vector<std::int64_t> prompt{3, 1, 4};
  for (const SamplingOptions options :
       {SamplingOptions{1.0, 0, 7}, SamplingOptions{0.8, 5, 8}, SamplingOptions{0.0, 0, 9}}) {
    // 20 new tokens run 15 past block_size 8, so the sliding window is covered too.
    const auto cached = generate(model, prompt, 20, options, {}, true);
    const auto uncached = generate(model, prompt, 20, options, {}, false);
    EXPECT_EQ(cached, uncached) << "temperature " << options.temperature;
    EXPECT_EQ(cached.size(), 20u);
    for (std::int64_t t : cached) EXPECT_TRUE(t >= 0 && t < 13);
  }
}

TEST(GPTGenerate, SameSeedSameTokensAndSamplingFollowsTopK) {
  GPT model = peaked_model();
  const SamplingOptions a{1.0, 0, 1}, b{1.0, 0, 2};
  EXPECT_EQ(generate(model, {5}, 30, a), generate(model, {5}, 30, a));
  EXPECT_NE(generate(model, {5}, 30, a), generate(model, {5}, 30, b));
  // A temperature so small that logits / temperature overflows is greedy decoding.
  EXPECT_EQ(generate(model, {5}, 12, {1e-320, 0, 3}), generate(model, {5}, 12, {0.0, 0, 4}));
  // top_k 1 is greedy decoding whatever the temperature.
  EXPECT_EQ(generate(model, {5}, 12, {2.0, 1, 3}), generate(model, {5}, 12, {0.0, 0, 4}));
  // A prompt longer than block_size keeps its last block_size tokens.
  const std::vector<std::int64_t> long_prompt{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
  const std::vector<std::int64_t> tail{4, 5, 6, 7, 8, 9, 10, 11};
  EXPECT_EQ(generate(model, long_prompt, 5, {0.0, 0, 0}), generate(model, tail, 5, {0.0, 0, 0}));
}

TEST(GPTGenerate, StopsWhenTheCallbackSaysSoAndRestoresTrainingMode) {
  GPT model = peaked_model();
  model.train();
  std::vector<std::int64_t> seen;
  const auto produced = generate(model, {2}, 10, {}, [&](std::int64_t token) {
    seen.push_back(token);
    return seen.size() < 4;
  });
  EXPECT_EQ(produced.size(), 4u);
  EXPECT_EQ(produced, seen);
  EXPECT_TRUE(model.is_training());
  EXPECT_TRUE(generate(model, {2}, 0, {}).empty());
}

TEST(GPTGenerate, BadRequestsAreErrors) {
  GPT model = peaked_model();
  EXPECT_EQ(error_of([&] { generate(model, {}, 3, {}); }), "generate: the prompt has no tokens");
  EXPECT_EQ(error_of([&] {
              generate(model, {1, 13}, 3, {});
            }),
            "generate: prompt token 1 is 13, outside the vocabulary [0, 13)");
  EXPECT_EQ(error_of([&] { generate(model, {1}, -1, {}); }),
            "generate: max_new_tokens must be >= 0, got -1");
  EXPECT_EQ(error_of([&] {
              generate(model, {1}, 3, {-1.0, 0, 0});
            }),
            "generate: temperature must be a finite number >= 0, got -1");
  EXPECT_EQ(error_of([&] {
              generate(model, {1}, 3, {1.0, -2, 0});
            }),
            "generate: top_k must be >= 0, got -2");
}

}  // namespace
}  // namespace lathe
