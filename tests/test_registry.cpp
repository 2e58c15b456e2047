// The open layer registry: a program registers its own module type, and then bundles of it load;
// what cannot be rebuilt is refused when saved, not when loaded; shapes are traced through the
// registry (what configs and bundles are checked with).
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "src/nn/registry_detail.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::error_of;
using testing::TempDir;

// y = x * scale + shift per feature: a module of the test's own, registered below.
class Affine : public Module {
 public:
  explicit Affine(std::int64_t features) : features_(features) {
    scale_ = register_parameter("scale", Tensor::ones({features}));
    shift_ = register_parameter("shift", Tensor::zeros({features}));
  }
  Tensor forward(const Tensor& x) override { return x * scale_ + shift_; }
  std::string type() const override { return "test_affine"; }
  json spec() const override { return {{"type", type()}, {"features", features_}}; }

 private:
  std::int64_t features_;
  Tensor scale_, shift_;
};

void register_affine() {
  static const bool once = [] {
    LayerType affine{"test_affine",
                     "x * scale + shift",
                     {{"features", LayerArgument::Kind::Integer, true, nullptr, "features"}},
                     [](const json& a, Generator&) -> std::shared_ptr<Module> {
                       return std::make_shared<Affine>(a["features"].get<std::int64_t>());
                     }};
    // Tests that walk every registered type build it from this when they run in this process.
    affine.example = {{"type", "test_affine"}, {"features", 2}};
    register_layer_type(std::move(affine));
    return true;
  }();
  (void)once;
}

// Registered under a name nobody registers: save_bundle must refuse it.
class Unregistered : public Affine {
 public:
  using Affine::Affine;
  std::string type() const override { return "test_unregistered"; }
  json spec() const override { return {{"type", type()}, {"features", 2}}; }
};

TEST(OpenRegistry, ARegisteredModuleRoundTripsThroughABundle) {
  register_affine();
  TempDir dir;
  Generator g(0);
  auto model = make_sequential(json::array({{{"type", "linear"}, {"in", 3}, {"out", 2}}}), g);
  auto affine = std::make_shared<Affine>(2);
  affine->named_parameters()[0].tensor.fill_(3.0);
  model->append(affine);
  const auto path = dir.path() / "m.safetensors";
  save_bundle(path, *model, {model->spec(), Preprocessing::none(), {{"input_shape", {3}}}, {}});
  const LoadedBundle loaded = load_bundle(path);
  const Tensor x = Tensor::ones({4, 3});
  model->eval();
  EXPECT_EQ(loaded.model->forward(x).to_vector(), model->forward(x).to_vector());
  EXPECT_EQ(loaded.model->spec()["layers"][1]["type"], "test_affine");
  EXPECT_NE(find_layer_type("test_affine"), nullptr);
}

TEST(OpenRegistry, SaveRefusesWhatTheRegistryCannotRebuildAndWritesNothing) {
  TempDir dir;
  const auto path = dir.path() / "m.safetensors";
  Unregistered model(2);
  const std::string error = error_of([&] {
    save_bundle(path, model, {model.spec(), Preprocessing::none(), {}, {}});
  });
  EXPECT_EQ(error.substr(0, error.find(';')),
            "save_bundle " + path.string() +
                ": module type 'test_unregistered' cannot be rebuilt from its spec(): unknown "
                "layer type 'test_unregistered'");
  EXPECT_NE(error.find("lathe::register_layer_type"), std::string::npos) << error;
  EXPECT_FALSE(std::filesystem::exists(path));

  // Registered, but a spec that leaves out an argument rebuilds other tensors: refused too.
  register_affine();
  class Forgetful : public Affine {
   public:
    Forgetful() : Affine(3) {}
    json spec() const override { return {{"type", "test_affine"}, {"features", 2}}; }
  } forgetful;
  const std::string mismatch = error_of([&] {
    save_bundle(path, forgetful, {forgetful.spec(), Preprocessing::none(), {}, {}});
  });
  EXPECT_NE(mismatch.find("module type 'test_affine': its tensor 'scale' [3] is of shape [2] in a "
                          "module rebuilt from its spec()"),
            std::string::npos)
      << mismatch;
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST(OpenRegistry, RegistrationRefusesDuplicatesAndIncompleteTypes) {
  register_affine();
  const auto make = [](const json&, Generator&) -> std::shared_ptr<Module> { return nullptr; };
  EXPECT_EQ(error_of([&] {
              register_layer_type({"linear", "again", {}, make});
            }),
            "register_layer_type: a type named 'linear' is already registered");
  EXPECT_EQ(error_of([&] {
              register_layer_type({"no_make", "", {}, nullptr});
            }),
            "register_layer_type: type 'no_make' has no make function");
  EXPECT_EQ(error_of([&] {
              register_layer_type({"sequential", "", {}, make});
            }),
            "register_layer_type: the name \"sequential\" is reserved or empty");
}

TEST(OpenRegistry, AMakeFunctionThatReturnsNoModuleIsAnError) {
  register_layer_type(
      {"returns_null", "", {}, [](const json&, Generator&) { return std::shared_ptr<Module>(); }});
  const testing::Finally forget([] { detail::remove_layer_type("returns_null"); });
  Generator generator(0);
  EXPECT_EQ(error_of([&] {
              make_layer(json{{"type", "returns_null"}}, generator);
            }),
            "layer type 'returns_null': its make function returned no module");
  EXPECT_EQ(error_of([&] {
              spec_tensor_shapes(json{{"type", "returns_null"}});
            }),
            "layer type 'returns_null': its make function returned no module");
}

// The shapes configs and bundles are checked with: each layer's output for one example, and an
// error naming the layer and the sizes that disagree.
TEST(OpenRegistry, TracesShapesThroughTheLayers) {
  const json cnn = {{"type", "sequential"},
                    {"layers",
                     {{{"type", "reshape"}, {"shape", {1, 28, 28}}},
                      {{"type", "conv2d"}, {"in", 1}, {"out", 8}, {"kernel_size", 3}},
                      {{"type", "max_pool2d"}, {"kernel_size", 2}},
                      {{"type", "flatten"}},
                      {{"type", "linear"}, {"in", 1352}, {"out", 10}}}}};
  const ShapeTrace trace = trace_shapes(cnn, {784});
  ASSERT_TRUE(trace.complete);
  EXPECT_EQ(trace.outputs,
            (std::vector<Shape>{{1, 28, 28}, {8, 26, 26}, {8, 13, 13}, {1352}, {10}}));
  json wrong = cnn;
  wrong["layers"][4]["in"] = 784;
  EXPECT_EQ(error_of([&] { trace_shapes(wrong, {784}); }),
            "layer 4: linear: the input has 1352 features but 'in' is 784");
  const json mlp = {{"type", "sequential"},
                    {"layers",
                     {{{"type", "linear"}, {"in", 784}, {"out", 100}},
                      {{"type", "relu"}},
                      {{"type", "linear"}, {"in", 784}, {"out", 64}}}}};
  EXPECT_EQ(error_of([&] { trace_shapes(mlp, {784}); }),
            "layer 2: linear: the input has 100 features but 'in' is 784");
  // A type without output_shape ends the trace where it stands.
  register_affine();
  const json custom = {
      {"type", "sequential"},
      {"layers", {{{"type", "test_affine"}, {"features", 3}}, {{"type", "relu"}}}}};
  EXPECT_FALSE(trace_shapes(custom, {3}).complete);
}

}  // namespace
}  // namespace lathe
