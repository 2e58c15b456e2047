// Optimizers, schedules and gradient clipping against fixtures recorded from PyTorch 1.13
// (tools/make_optim_fixtures.py), plus state save/restore, float32 and argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "lathe/lathe.h"
#include "lathe/optim.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

using nlohmann::json;

json fixture(const std::string& name) {
  const std::string path = LATHE_SOURCE_DIR "/tests/fixtures/optim/" + name + ".json";
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  return json::parse(in);
}

void expect_close_values(const std::vector<double>& got, const std::vector<double>& expected,
                         double tolerance, const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_LE(std::abs(got[i] - expected[i]), tolerance * std::max(1.0, std::abs(expected[i])))
        << what << " element " << i << ": got " << got[i] << ", expected " << expected[i];
}

bool same_bits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(a.data<double>(), b.data<double>(), a.numel() * sizeof(double)) == 0;
}

// Replays a fixture: its parameters, the optimizer it describes, and its recorded gradients.
struct Replay {
  json f;
  DType dtype;
  std::vector<NamedTensor> params;
  std::unique_ptr<Optimizer> optimizer;

  Replay(json fixture_json, DType dtype_) : f(std::move(fixture_json)), dtype(dtype_) {
    for (const std::string name : f["param_names"])
      params.push_back({name, Tensor::from_vector(f["initial"][name], shape(name), dtype)});
    const json& o = f["options"];
    const std::string kind = f["optimizer"];
    if (kind == "sgd") {
      optimizer = std::make_unique<SGD>(
          params, SGDOptions{o["learning_rate"], o["momentum"], o["dampening"], o["weight_decay"],
                             o["nesterov"]});
      return;
    }
    const AdamOptions adam{o["learning_rate"], o["beta1"], o["beta2"], o["epsilon"],
                           o["weight_decay"]};
    if (kind == "adam") optimizer = std::make_unique<Adam>(params, adam);
    if (kind == "adamw") optimizer = std::make_unique<AdamW>(params, adam);
    if (!optimizer) throw std::runtime_error("unknown optimizer in fixture: " + kind);
  }

  Shape shape(const std::string& name) const { return f.at("shapes").at(name).get<Shape>(); }

  // Feeds the gradients recorded for step `s` and steps.
  void step(std::size_t s) {
    for (auto& [name, tensor] : params)
      tensor.set_grad(Tensor::from_vector(f["steps"][s]["grads"][name], shape(name), dtype));
    optimizer->step();
  }
};

const char* const kConfigs[] = {"sgd_plain",    "sgd_momentum",      "sgd_nesterov",
                                "adam_default", "adam_weight_decay", "adamw"};

class OptimReference : public ::testing::TestWithParam<const char*> {};

TEST_P(OptimReference, MatchesPyTorchEveryStep) {
  Replay run(fixture(GetParam()), DType::Float64);
  EXPECT_EQ(run.optimizer->name(), run.f["optimizer"]);
  for (std::size_t s = 0; s < run.f["steps"].size(); ++s) {
    run.step(s);
    for (const auto& [name, tensor] : run.params)
      expect_close_values(tensor.to_vector(), run.f["steps"][s]["params"][name], 1e-10,
                          "step " + std::to_string(s + 1) + " " + name);
  }
  EXPECT_EQ(run.optimizer->steps_taken(), 5);
}

TEST_P(OptimReference, Float32ParametersFollowWithinFloatPrecision) {
  Replay run(fixture(GetParam()), DType::Float32);
  for (std::size_t s = 0; s < run.f["steps"].size(); ++s) {
    run.step(s);
    for (const auto& [name, tensor] : run.params) {
      EXPECT_EQ(tensor.dtype(), DType::Float32);
      expect_close_values(tensor.to_vector(), run.f["steps"][s]["params"][name], 1e-5,
                          "step " + std::to_string(s + 1) + " " + name);
    }
  }
  for (const auto& [key, value] : run.optimizer->state())
    if (key != "step") {
      EXPECT_EQ(value.dtype(), DType::Float32) << key;
    }
}

// 5 steps in one go versus 2 steps, save, a new optimizer on copies of the parameters, load,
// 3 more steps: the same bits. The original keeps stepping after the save, which must not
// change the saved state.
TEST_P(OptimReference, StateRoundTripResumesBitExactly) {
  Replay straight(fixture(GetParam()), DType::Float64);
  for (std::size_t s = 0; s < 5; ++s) straight.step(s);

  Replay first(fixture(GetParam()), DType::Float64);
  first.step(0);
  first.step(1);
  const auto saved = first.optimizer->state();
  Replay resumed(fixture(GetParam()), DType::Float64);
  for (std::size_t i = 0; i < first.params.size(); ++i)
    resumed.params[i].tensor.copy_(first.params[i].tensor);
  for (std::size_t s = 2; s < 5; ++s) first.step(s);

  EXPECT_EQ(saved.at("step").item(), 2.0);
  resumed.optimizer->load_state(saved);
  EXPECT_EQ(resumed.optimizer->steps_taken(), 2);
  for (std::size_t s = 2; s < 5; ++s) resumed.step(s);

  for (std::size_t i = 0; i < straight.params.size(); ++i) {
    EXPECT_TRUE(same_bits(resumed.params[i].tensor, straight.params[i].tensor))
        << straight.params[i].name;
    EXPECT_TRUE(same_bits(first.params[i].tensor, straight.params[i].tensor));
  }
  const auto a = straight.optimizer->state(), b = resumed.optimizer->state();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, value] : a) EXPECT_TRUE(same_bits(b.at(key), value)) << key;
}

INSTANTIATE_TEST_SUITE_P(Optim, OptimReference, ::testing::ValuesIn(kConfigs),
                         [](const auto& info) { return std::string(info.param); });

std::vector<NamedTensor> fc1(DType dtype = DType::Float64) {
  Tensor weight = Tensor::from_vector({1, -2, 3, -4, 5, -6, 7, -8, 9, -10, 11, -12}, {4, 3}, dtype);
  Tensor bias = Tensor::from_vector({0.5, -0.5, 1.5, -1.5}, {4}, dtype);
  return {{"fc1.weight", weight}, {"fc1.bias", bias}};
}

TEST(OptimState, NamesEveryBufferAndTheStep) {
  Adam adam(fc1(), AdamOptions{});
  std::vector<std::string> keys;
  for (const auto& [key, value] : adam.state()) keys.push_back(key);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"exp_avg.fc1.bias", "exp_avg.fc1.weight",
                                      "exp_avg_sq.fc1.bias", "exp_avg_sq.fc1.weight", "step"}));
  EXPECT_EQ(adam.state().at("exp_avg.fc1.weight").shape(), (Shape{4, 3}));
  EXPECT_EQ(SGD(fc1(), SGDOptions{}).state().size(), 1u);  // no momentum: only "step"
  EXPECT_EQ(SGD(fc1(), SGDOptions{.momentum = 0.9}).state().count("momentum_buffer.fc1.bias"), 1u);
}

TEST(OptimState, LoadStateErrorsNameTheEntryAndLeaveTheOptimizerUnchanged) {
  auto params = fc1();
  Adam source(params, AdamOptions{});
  for (auto& p : params) p.tensor.set_grad(Tensor::ones(p.tensor.shape(), DType::Float64));
  source.step();
  const auto good = source.state();
  Adam target(fc1(), AdamOptions{});

  auto missing = good;
  missing.erase("exp_avg.fc1.weight");
  EXPECT_EQ(error_of([&] { target.load_state(missing); }),
            "optimizer load_state: missing entry 'exp_avg.fc1.weight'");
  auto no_step = good;
  no_step.erase("step");
  EXPECT_EQ(error_of([&] { target.load_state(no_step); }),
            "optimizer load_state: missing entry 'step'");
  auto wrong_shape = good;
  wrong_shape["exp_avg.fc1.weight"] = Tensor::zeros({3}, DType::Float64);
  EXPECT_EQ(error_of([&] { target.load_state(wrong_shape); }),
            "optimizer load_state: entry 'exp_avg.fc1.weight' shape [3] does not match "
            "parameter fc1.weight [4,3]");
  auto extra = good;
  extra["momentum_buffer.fc1.bias"] = Tensor::zeros({4}, DType::Float64);
  EXPECT_EQ(error_of([&] { target.load_state(extra); }),
            "optimizer load_state: unexpected entry 'momentum_buffer.fc1.bias' for adam with "
            "these options and parameters");
  auto bad_step = good;
  bad_step["step"] = Tensor::scalar(1.5, DType::Float64);
  EXPECT_EQ(error_of([&] { target.load_state(bad_step); }),
            "optimizer load_state: entry 'step' must be a non-negative integer, got 1.5");

  EXPECT_EQ(target.steps_taken(), 0);
  for (const auto& [key, value] : target.state())
    if (key != "step") {
      for (double x : value.to_vector()) EXPECT_EQ(x, 0.0) << key;
    }
  EXPECT_EQ(error_of([&] { target.load_state(good); }), "(no error)");
  EXPECT_EQ(target.steps_taken(), 1);
}

// PyTorch skips parameters without a gradient: no update, no weight decay, no buffer change.
TEST(OptimStep, ParametersWithoutGradientAreUntouched) {
  std::vector<std::function<std::unique_ptr<Optimizer>(std::vector<NamedTensor>)>> makers = {
      [](auto p) {
        return std::make_unique<SGD>(p, SGDOptions{.momentum = 0.9, .weight_decay = 0.1});
      },
      [](auto p) { return std::make_unique<Adam>(p, AdamOptions{.weight_decay = 0.1}); },
      [](auto p) { return std::make_unique<AdamW>(p, AdamOptions{.weight_decay = 0.1}); }};
  for (const auto& make : makers) {
    auto params = fc1();
    const Tensor weight_before = params[0].tensor.clone(), bias_before = params[1].tensor.clone();
    auto optimizer = make(params);
    params[1].tensor.set_grad(Tensor::ones({4}, DType::Float64));
    for (int s = 0; s < 3; ++s) optimizer->step();
    SCOPED_TRACE(optimizer->name());
    EXPECT_TRUE(same_bits(params[0].tensor, weight_before));
    EXPECT_FALSE(same_bits(params[1].tensor, bias_before));
    for (const auto& [key, value] : optimizer->state())
      if (key.ends_with(".fc1.weight")) {
        for (double x : value.to_vector()) EXPECT_EQ(x, 0.0) << key;
      }
  }
}

TEST(OptimStep, SteadyStateAllocatesNoStorage) {
  auto params = fc1();
  Adam adam(params, AdamOptions{});
  SGD sgd(params, SGDOptions{.momentum = 0.9, .nesterov = true});
  for (auto& p : params) p.tensor.set_grad(Tensor::ones(p.tensor.shape(), DType::Float64));
  const auto before = Storage::allocation_count();
  for (int s = 0; s < 3; ++s) {
    adam.step();
    sgd.step();
  }
  EXPECT_EQ(Storage::allocation_count(), before);
}

// A weight whose gradient stops (a unit that no longer fires) has its moment buffers shrink
// every step into the subnormal range, where Intel cores take a microcode assist per vector
// operation. The optimizers flush those to zero: no subnormal is left, the parameters follow a
// plain float reference of PyTorch's formulas, and the caller's float mode is untouched.
// Enough elements that the update is split over the kernel threads.
constexpr std::int64_t kStalled = 40000;

std::vector<NamedTensor> stalled_weights() {
  std::vector<float> values(kStalled);
  for (std::size_t i = 0; i < values.size(); ++i)
    values[i] = 0.01f * static_cast<float>(i % 100 + 1);
  return {{"w", Tensor::from_vector(std::vector<double>(values.begin(), values.end()),
                                    {static_cast<std::int64_t>(values.size())}, DType::Float32)}};
}

bool has_subnormal(const Tensor& t) {
  for (double x : t.to_vector())
    if (std::fpclassify(static_cast<float>(x)) == FP_SUBNORMAL) return true;
  return false;
}

bool subnormal_survives_here() {
  volatile float tiny = 1e-38f;
  return tiny * 0.5f != 0.0f;
}

TEST(OptimStep, AdamFlushesSubnormalMomentsAndMovesParametersAsPyTorchDoes) {
  auto params = stalled_weights();
  const std::vector<double> start = params[0].tensor.to_vector();
  std::vector<float> p(start.begin(), start.end()), m(kStalled, 0), v(kStalled, 0);
  Adam adam(params, AdamOptions{});
  const int steps = 1200;  // 0.9^1200 times the first gradient is far below 1e-38
  for (int s = 1; s <= steps; ++s) {
    const float g = s == 1 ? 1.0f : 0.0f;
    params[0].tensor.set_grad(Tensor::full({kStalled}, g, DType::Float32));
    adam.step();
    const float bc1 = 1 - std::pow(0.9f, static_cast<float>(s));
    const float bc2 = std::sqrt(1 - std::pow(0.999f, static_cast<float>(s)));
    for (std::size_t i = 0; i < p.size(); ++i) {
      m[i] = m[i] * 0.9f + 0.1f * g;
      v[i] = v[i] * 0.999f + 0.001f * g * g;
      p[i] -= 1e-3f / bc1 * m[i] / (std::sqrt(v[i]) / bc2 + 1e-8f);
    }
  }
  const std::vector<double> got = params[0].tensor.to_vector();
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(got[i], p[i], 1e-6) << "element " << i;
  for (const auto& [key, value] : adam.state())
    if (key != "step") {
      EXPECT_FALSE(has_subnormal(value)) << key;
    }
  EXPECT_TRUE(subnormal_survives_here());
}

TEST(OptimStep, SgdFlushesASubnormalMomentumBuffer) {
  auto params = stalled_weights();
  const std::vector<double> start = params[0].tensor.to_vector();
  SGD sgd(params, SGDOptions{.learning_rate = 0.1, .momentum = 0.9});
  std::vector<float> p(start.begin(), start.end()), buf(kStalled);
  for (int s = 1; s <= 1200; ++s) {
    const float g = s == 1 ? 1.0f : 0.0f;
    params[0].tensor.set_grad(Tensor::full({kStalled}, g, DType::Float32));
    sgd.step();
    for (std::size_t i = 0; i < p.size(); ++i) {
      buf[i] = s == 1 ? g : buf[i] * 0.9f + g;
      p[i] -= 0.1f * buf[i];
    }
  }
  const std::vector<double> got = params[0].tensor.to_vector();
  for (std::size_t i = 0; i < p.size(); ++i) EXPECT_NEAR(got[i], p[i], 1e-6) << "element " << i;
  for (const auto& [key, value] : sgd.state()) {
    EXPECT_FALSE(has_subnormal(value)) << key;
  }
  EXPECT_TRUE(subnormal_survives_here());
}

TEST(OptimStep, ZeroGradDropsEveryGradient) {
  auto params = fc1();
  SGD sgd(params, SGDOptions{});
  for (auto& p : params) p.tensor.set_grad(Tensor::ones(p.tensor.shape(), DType::Float64));
  sgd.zero_grad();
  for (const auto& p : params) EXPECT_FALSE(p.tensor.grad().defined()) << p.name;
}

TEST(OptimOptions, InvalidOptionsAreRejectedWithTheirValue) {
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.learning_rate = -1}); }),
            "sgd: learning rate must be positive, got -1");
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.learning_rate = 0}); }),
            "sgd: learning rate must be positive, got 0");
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.momentum = -0.5}); }),
            "sgd: momentum must be non-negative, got -0.5");
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.momentum = 0.9, .dampening = 1.5}); }),
            "sgd: dampening must be in [0, 1], got 1.5");
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.weight_decay = -0.1}); }),
            "sgd: weight decay must be non-negative, got -0.1");
  EXPECT_EQ(error_of([] { SGD(fc1(), SGDOptions{.nesterov = true}); }),
            "sgd: nesterov needs momentum > 0 and dampening 0, got momentum 0 and dampening 0");
  EXPECT_EQ(
      error_of([] { SGD(fc1(), SGDOptions{.momentum = 0.9, .dampening = 0.1, .nesterov = true}); }),
      "sgd: nesterov needs momentum > 0 and dampening 0, got momentum 0.9 and dampening 0.1");
  EXPECT_EQ(error_of([] { Adam(fc1(), AdamOptions{.learning_rate = NAN}); }),
            "adam: learning rate must be finite, got nan");
  EXPECT_EQ(error_of([] { Adam(fc1(), AdamOptions{.beta1 = 1}); }),
            "adam: beta1 must be in [0, 1), got 1");
  EXPECT_EQ(error_of([] { AdamW(fc1(), AdamOptions{.beta2 = -0.1}); }),
            "adamw: beta2 must be in [0, 1), got -0.1");
  EXPECT_EQ(error_of([] { Adam(fc1(), AdamOptions{.epsilon = -1e-8}); }),
            "adam: epsilon must be non-negative, got -1e-08");
  EXPECT_EQ(error_of([] { AdamW(fc1(), AdamOptions{.weight_decay = -0.01}); }),
            "adamw: weight decay must be non-negative, got -0.01");
}

TEST(OptimOptions, ParameterListErrorsNameTheParameter) {
  auto duplicate = fc1();
  duplicate.push_back({"fc1.bias", Tensor::zeros({4}, DType::Float64)});
  EXPECT_EQ(error_of([&] { SGD(duplicate, SGDOptions{}); }),
            "optimizer: duplicate parameter name 'fc1.bias'");
  auto shared = fc1();
  shared.push_back({"alias", shared[0].tensor.detach()});
  EXPECT_EQ(error_of([&] { Adam(shared, AdamOptions{}); }),
            "optimizer: parameters 'fc1.weight' and 'alias' share storage");
  EXPECT_EQ(error_of([] {
              SGD({{"step", Tensor::from_indices({1}, {1})}}, SGDOptions{});
            }),
            "optimizer: parameter 'step' has dtype int64; expected float32 or float64");
  EXPECT_EQ(error_of([] { SGD({}, SGDOptions{}); }), "optimizer: the parameter list is empty");
}

TEST(OptimOptions, SetLearningRateAcceptsZeroButNotNegative) {
  auto params = fc1();
  Adam adam(params, AdamOptions{});
  adam.set_learning_rate(0.25);
  EXPECT_EQ(adam.learning_rate(), 0.25);
  adam.set_learning_rate(0);
  EXPECT_EQ(adam.learning_rate(), 0.0);
  EXPECT_EQ(error_of([&] { adam.set_learning_rate(-1); }),
            "adam: learning rate must be non-negative, got -1");
  EXPECT_EQ(adam.learning_rate(), 0.0);
}

TEST(Schedule, StepLRMatchesPyTorch) {
  const json f = fixture("schedules")["step_lr"];
  const StepLR schedule(f["base"], f["step_size"], f["gamma"]);
  std::vector<double> got;
  for (std::size_t t = 0; t < f["values"].size(); ++t)
    got.push_back(schedule.learning_rate(static_cast<std::int64_t>(t)));
  expect_close_values(got, f["values"], 1e-12, "StepLR");
}

TEST(Schedule, CosineWarmupMatchesPyTorchLambdaLR) {
  const json cases = fixture("schedules")["cosine_warmup"];
  for (const json& f : cases) {
    const CosineWarmupLR schedule(f["base"], f["warmup_steps"], f["total_steps"], f["min_lr"]);
    std::vector<double> got;
    for (std::size_t t = 0; t < f["values"].size(); ++t)
      got.push_back(schedule.learning_rate(static_cast<std::int64_t>(t)));
    expect_close_values(got, f["values"], 1e-12, "CosineWarmupLR " + f.dump());
  }
}

TEST(Schedule, DrivesAnOptimizerThroughItsWarmup) {
  auto params = fc1();
  SGD sgd(params, SGDOptions{.learning_rate = 0.1});
  const CosineWarmupLR schedule(0.1, 3, 6);
  params[0].tensor.set_grad(Tensor::ones({4, 3}, DType::Float64));
  sgd.set_learning_rate(schedule.learning_rate(sgd.steps_taken()));
  sgd.step();
  EXPECT_DOUBLE_EQ(sgd.learning_rate(), 0.025);  // 0.1 * 1 / 4: the first step already moves
  EXPECT_DOUBLE_EQ(params[0].tensor.at({0, 0}), 1 - 0.025);
  sgd.set_learning_rate(schedule.learning_rate(sgd.steps_taken()));
  sgd.step();
  EXPECT_DOUBLE_EQ(sgd.learning_rate(), 0.05);
  EXPECT_DOUBLE_EQ(params[0].tensor.at({0, 0}), 1 - 0.025 - 0.05);
  EXPECT_EQ(ConstantLR(0.3).learning_rate(1000), 0.3);
}

TEST(Schedule, InvalidArgumentsAreRejected) {
  EXPECT_EQ(error_of([] { StepLR(0.1, 0, 0.5); }), "StepLR: step_size must be positive, got 0");
  EXPECT_EQ(error_of([] { StepLR(0.1, 3, -0.5); }), "StepLR: gamma must be positive, got -0.5");
  EXPECT_EQ(error_of([] { StepLR(-0.1, 3, 0.5); }),
            "StepLR: base learning rate must be positive, got -0.1");
  EXPECT_EQ(error_of([] { StepLR(0.1, 3, 0.5).learning_rate(-1); }),
            "StepLR: step must be non-negative, got -1");
  EXPECT_EQ(error_of([] { CosineWarmupLR(0.1, 11, 10); }),
            "CosineWarmupLR: warmup_steps must be in [0, total_steps 10], got 11");
  EXPECT_EQ(error_of([] { CosineWarmupLR(0.1, -1, 10); }),
            "CosineWarmupLR: warmup_steps must be in [0, total_steps 10], got -1");
  EXPECT_EQ(error_of([] { CosineWarmupLR(0.1, 0, 0); }),
            "CosineWarmupLR: total_steps must be positive, got 0");
  EXPECT_EQ(error_of([] { CosineWarmupLR(0.1, 2, 10, 0.2); }),
            "CosineWarmupLR: min_lr must be in [0, base 0.1], got 0.2");
  EXPECT_EQ(error_of([] { CosineWarmupLR(0.1, 2, 10).learning_rate(-3); }),
            "CosineWarmupLR: step must be non-negative, got -3");
}

TEST(Clip, GradNormMatchesPyTorch) {
  const json f = fixture("clip_grad_norm");
  for (const json& c : f["cases"]) {
    SCOPED_TRACE(c.dump());
    std::vector<Tensor> params;
    for (const std::string name : f["param_names"]) {
      const auto shape = f["shapes"][name].get<Shape>();
      params.push_back(Tensor::zeros(shape, DType::Float64));
      params.back().set_grad(Tensor::from_vector(c["grads"][name], shape, DType::Float64));
    }
    params.push_back(Tensor::zeros({5}, DType::Float64));  // no gradient: ignored
    const double norm = clip_grad_norm(params, c["max_norm"]);
    EXPECT_LE(std::abs(norm - c["norm"].get<double>()), 1e-10 * c["norm"].get<double>());
    for (std::size_t i = 0; i < 2; ++i)
      expect_close_values(params[i].grad().to_vector(),
                          c["clipped"][f["param_names"][i].get<std::string>()], 1e-10,
                          "clipped gradient");
    EXPECT_FALSE(params[2].grad().defined());
  }
}

TEST(Clip, Float32AndNoGradients) {
  Tensor p = Tensor::zeros({2});
  p.set_grad(Tensor::from_vector({3, 4}, {2}));
  EXPECT_DOUBLE_EQ(clip_grad_norm({p}, 1.0), 5.0);
  EXPECT_EQ(p.grad().dtype(), DType::Float32);
  expect_close_values(p.grad().to_vector(), {0.6, 0.8}, 1e-6, "float32 clipped");
  EXPECT_EQ(clip_grad_norm({Tensor::zeros({3})}, 1.0), 0.0);
  EXPECT_EQ(error_of([] { clip_grad_norm({}, -1); }),
            "clip_grad_norm: max_norm must be non-negative, got -1");
}

}  // namespace
}  // namespace lathe
