// ONNX export: the graph's nodes, initializers, inputs, outputs and metadata, and its errors.
// (That the graph is valid ONNX and computes what lathe computes is checked by the onnx_check_*
// and onnx_runtime_* ctests, with onnx.checker and ONNX Runtime.)
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "lathe/lathe.h"
#include "tests/table_model.h"
#include "tests/test_support.h"

namespace lathe {
namespace {
using nlohmann::json;
using testing::error_of;

Predictor make_predictor(const json& layers, const Shape& input_shape, bool classification,
                         Preprocessing preprocessing = Preprocessing::none()) {
  Generator init(7);
  auto model = make_sequential(layers, init);
  model->eval();
  json task = {{"task", classification ? "classification" : "regression"},
               {"input_shape", input_shape}};
  return Predictor(LoadedBundle{model, {model->spec(), preprocessing, task, json::object()}});
}

onnx::ModelProto parse_exported(const OnnxModel& exported) {
  onnx::ModelProto model;
  EXPECT_TRUE(model.ParseFromString(exported.bytes));
  return model;
}

std::vector<std::string> op_types(const onnx::ModelProto& model) {
  std::vector<std::string> ops;
  for (const auto& node : model.graph().node()) ops.push_back(node.op_type());
  return ops;
}

std::vector<std::string> initializer_names(const onnx::ModelProto& model) {
  std::vector<std::string> names;
  for (const auto& t : model.graph().initializer()) names.push_back(t.name());
  return names;
}

const onnx::TensorProto& initializer(const onnx::ModelProto& model, const std::string& name) {
  for (const auto& t : model.graph().initializer())
    if (t.name() == name) return t;
  throw Error("no initializer " + name);
}

std::vector<float> floats(const onnx::TensorProto& t) {
  std::vector<float> values(t.raw_data().size() / sizeof(float));
  std::memcpy(values.data(), t.raw_data().data(), t.raw_data().size());
  return values;
}

std::vector<std::string> dims(const onnx::ValueInfoProto& value) {
  std::vector<std::string> out;
  for (const auto& d : value.type().tensor_type().shape().dim())
    out.push_back(d.has_dim_param() ? d.dim_param() : std::to_string(d.dim_value()));
  return out;
}

std::string metadata(const onnx::ModelProto& model, const std::string& key) {
  for (const auto& entry : model.metadata_props())
    if (entry.key() == key) return entry.value();
  return "(absent)";
}

const json kMlp = json::array({{{"type", "flatten"}},
                               {{"type", "linear"}, {"in", 6}, {"out", 5}},
                               {{"type", "relu"}},
                               {{"type", "linear"}, {"in", 5}, {"out", 3}}});

TEST(OnnxExport, ClassifierGraphHasPreprocessingLayersAndSoftmax) {
  const Predictor predictor =
      make_predictor(kMlp, {2, 3}, true, Preprocessing::normalize(0.25, 0.5, 2.0));
  const OnnxModel exported = build_onnx_model(predictor);
  const onnx::ModelProto model = parse_exported(exported);

  EXPECT_EQ(model.ir_version(), 8);
  ASSERT_EQ(model.opset_import_size(), 1);
  EXPECT_EQ(model.opset_import(0).domain(), "");
  EXPECT_EQ(model.opset_import(0).version(), 17);
  EXPECT_EQ(model.producer_name(), "lathe");
  EXPECT_EQ(model.producer_version(), version());
  EXPECT_EQ(model.graph().name(), "lathe_classifier");

  EXPECT_EQ(op_types(model), (std::vector<std::string>{"Mul", "Sub", "Div", "Flatten", "Gemm",
                                                       "Relu", "Gemm", "Softmax"}));
  EXPECT_EQ(initializer_names(model),
            (std::vector<std::string>{"preprocess.scale", "preprocess.mean", "preprocess.std",
                                      "1.weight", "1.bias", "3.weight", "3.bias"}));
  EXPECT_EQ(exported.nodes, 8u);
  EXPECT_EQ(exported.initializers, 7u);

  // Linear keeps lathe's [out, in] weight and lets Gemm transpose it.
  const onnx::TensorProto& w = initializer(model, "1.weight");
  EXPECT_EQ(w.data_type(), onnx::TensorProto::FLOAT);
  ASSERT_EQ(w.dims_size(), 2);
  EXPECT_EQ(w.dims(0), 5);
  EXPECT_EQ(w.dims(1), 6);
  const Tensor weight = predictor.model().state_dict().at("1.weight");
  const std::vector<float> values = floats(w);
  ASSERT_EQ(values.size(), 30u);
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(values[i], weight.data<float>()[i]) << i;
  const onnx::NodeProto& gemm = model.graph().node(4);
  EXPECT_EQ(gemm.input_size(), 3);
  ASSERT_EQ(gemm.attribute_size(), 1);
  EXPECT_EQ(gemm.attribute(0).name(), "transB");
  EXPECT_EQ(gemm.attribute(0).i(), 1);
  EXPECT_EQ(floats(initializer(model, "preprocess.scale")), std::vector<float>{0.25f});
  EXPECT_EQ(initializer(model, "preprocess.mean").dims_size(), 0);  // one value: a scalar

  ASSERT_EQ(model.graph().input_size(), 1);
  EXPECT_EQ(model.graph().input(0).name(), "input");
  EXPECT_EQ(model.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(dims(model.graph().input(0)), (std::vector<std::string>{"N", "2", "3"}));
  ASSERT_EQ(model.graph().output_size(), 2);
  EXPECT_EQ(model.graph().output(0).name(), "probabilities");
  EXPECT_EQ(model.graph().output(1).name(), "logits");
  EXPECT_EQ(dims(model.graph().output(0)), (std::vector<std::string>{"N", "3"}));
  EXPECT_EQ(dims(model.graph().output(1)), (std::vector<std::string>{"N", "3"}));
  EXPECT_EQ(model.graph().node(6).output(0), "logits");  // the last Gemm, renamed
  EXPECT_EQ(model.graph().node(7).input(0), "logits");
  EXPECT_EQ(model.graph().node(7).output(0), "probabilities");
  EXPECT_EQ(exported.input.describe(), "input [N,2,3]");
  EXPECT_EQ(exported.outputs.at(0).describe(), "probabilities [N,3]");

  EXPECT_EQ(metadata(model, "lathe.classes"), R"(["0","1","2"])");
  EXPECT_EQ(json::parse(metadata(model, "lathe.preprocessing")),
            Preprocessing::normalize(0.25, 0.5, 2.0).to_json());
  EXPECT_EQ(json::parse(metadata(model, "lathe.architecture")), predictor.model().spec());
  EXPECT_EQ(json::parse(metadata(model, "lathe.task"))["input_shape"], json({2, 3}));
}

TEST(OnnxExport, PerFeaturePreprocessingIsShapedLikeAnExample) {
  Generator g(1);
  const Preprocessing standardize = Preprocessing::standardize(Tensor::randn({20, 2, 3}, g), 2.0);
  const onnx::ModelProto model =
      parse_exported(build_onnx_model(make_predictor(kMlp, {2, 3}, true, standardize)));
  for (const char* name : {"preprocess.mean", "preprocess.std"}) {
    const onnx::TensorProto& t = initializer(model, name);
    ASSERT_EQ(t.dims_size(), 2) << name;
    EXPECT_EQ(t.dims(0), 2);
    EXPECT_EQ(t.dims(1), 3);
  }
  const std::vector<float> mean = floats(initializer(model, "preprocess.mean"));
  for (std::size_t i = 0; i < mean.size(); ++i)
    EXPECT_EQ(mean[i], static_cast<float>(standardize.mean()[i]));
}

TEST(OnnxExport, RegressionHasOneOutputAndNoIdentityPreprocessing) {
  const Predictor predictor =
      make_predictor(json::array({{{"type", "linear"}, {"in", 4}, {"out", 2}}}), {4}, false);
  const onnx::ModelProto model = parse_exported(build_onnx_model(predictor));
  EXPECT_EQ(op_types(model), std::vector<std::string>{"Gemm"});
  ASSERT_EQ(model.graph().output_size(), 1);
  EXPECT_EQ(model.graph().output(0).name(), "output");
  EXPECT_EQ(dims(model.graph().output(0)), (std::vector<std::string>{"N", "2"}));
  EXPECT_EQ(model.graph().name(), "lathe_regression");
  EXPECT_EQ(metadata(model, "lathe.classes"), "(absent)");
}

TEST(OnnxExport, ModelWithoutNodesGetsAnIdentityOutput) {
  const onnx::ModelProto model = parse_exported(
      build_onnx_model(make_predictor(json::array({{{"type", "dropout"}}}), {3}, false)));
  EXPECT_EQ(op_types(model), std::vector<std::string>{"Identity"});
  EXPECT_EQ(model.graph().node(0).input(0), "input");
  EXPECT_EQ(model.graph().node(0).output(0), "output");
}

TEST(OnnxExport, LinearOnHigherRankInputsUsesMatMul) {
  const onnx::ModelProto model = parse_exported(build_onnx_model(
      make_predictor(json::array({{{"type", "linear"}, {"in", 3}, {"out", 4}},
                                  {{"type", "linear"}, {"in", 4}, {"out", 2}, {"bias", false}},
                                  {{"type", "flatten"}}}),
                     {5, 3}, false)));
  EXPECT_EQ(op_types(model), (std::vector<std::string>{"Transpose", "MatMul", "Add", "Transpose",
                                                       "MatMul", "Flatten"}));
  EXPECT_EQ(initializer_names(model), (std::vector<std::string>{"0.weight", "0.bias", "1.weight"}));
  EXPECT_EQ(dims(model.graph().output(0)), (std::vector<std::string>{"N", "10"}));
}

TEST(OnnxExport, ActivationsDropoutAndNestedSequential) {
  const onnx::ModelProto model = parse_exported(build_onnx_model(make_predictor(
      json::array({{{"type", "linear"}, {"in", 3}, {"out", 3}, {"bias", false}},
                   {{"type", "leaky_relu"}, {"negative_slope", 0.25}},
                   {{"type", "dropout"}, {"p", 0.5}},
                   {{"type", "sequential"},
                    {"layers", json::array({{{"type", "sigmoid"}},
                                            {{"type", "linear"}, {"in", 3}, {"out", 3}},
                                            {{"type", "tanh"}}})}},
                   {{"type", "gelu"}},
                   {{"type", "gelu"}, {"approximate", "tanh"}}}),
      {3}, true)));
  EXPECT_EQ(op_types(model),
            (std::vector<std::string>{
                "Gemm",   "LeakyRelu", "Sigmoid", "Gemm", "Tanh",  // through the nest
                "Div",    "Erf",       "Add",     "Mul",  "Mul",   // exact GELU
                "Mul",    "Mul",       "Mul",     "Add",  "Mul",
                "Tanh",   "Add",       "Mul",     "Mul",  // tanh GELU
                "Softmax"}));
  const onnx::NodeProto& leaky = model.graph().node(1);
  ASSERT_EQ(leaky.attribute_size(), 1);
  EXPECT_EQ(leaky.attribute(0).name(), "alpha");
  EXPECT_FLOAT_EQ(leaky.attribute(0).f(), 0.25f);
  EXPECT_EQ(model.graph().node(3).name(), "3.1/gemm");
  EXPECT_EQ(
      initializer_names(model),
      (std::vector<std::string>{"0.weight", "3.1.weight", "3.1.bias", "const/1.4142135", "const/1",
                                "const/0.5", "const/0.044715", "const/0.7978846"}));
}

// A layer that lathe can run but the exporter has no entry for.
class Foo : public Module {
 public:
  Tensor forward(const Tensor& input) override { return input; }
  std::string type() const override { return "foo"; }
};

// A model trained on a table: one input per column, the encoding in the graph.
Predictor table_predictor(const std::string& unknown_category, bool identity = false) {
  const RawTable table = parse_csv_table(
      identity ? "a,b,y\n1,2,x\n3,4,z\n" : "island,bill,y\nDream,39,x\nBiscoe,NA,z\n", "t.csv");
  TableOptions options;
  options.target = "y";
  options.impute = "median";
  options.missing_indicator_columns =
      identity ? std::vector<std::string>{} : std::vector<std::string>{"bill"};
  options.unknown_category = unknown_category;
  if (identity) options.impute = "none";
  return Predictor(testing::linear_table_classifier(TableEncoding::fit(table, {0, 1}, options), 3));
}

TEST(OnnxExport, TableModelsTakeOneInputPerColumnAndCarryTheEncoding) {
  const onnx::ModelProto model = parse_exported(build_onnx_model(table_predictor("error")));
  ASSERT_EQ(model.graph().input_size(), 2);
  EXPECT_EQ(model.graph().input(0).name(), "island");
  EXPECT_EQ(model.graph().input(0).type().tensor_type().elem_type(), onnx::TensorProto::STRING);
  EXPECT_EQ(model.graph().input(1).name(), "bill");
  EXPECT_EQ(model.graph().input(1).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
  EXPECT_EQ(dims(model.graph().input(1)), (std::vector<std::string>{"N", "1"}));
  ASSERT_EQ(model.opset_import_size(), 2);
  EXPECT_EQ(model.opset_import(1).domain(), "ai.onnx.ml");
  EXPECT_EQ(op_types(model),
            (std::vector<std::string>{"OneHotEncoder", "Flatten", "MatMul", "IsNaN", "Where",
                                      "Cast", "Concat", "Gemm", "Softmax"}));
  const onnx::NodeProto& one_hot = model.graph().node(0);
  EXPECT_EQ(one_hot.domain(), "ai.onnx.ml");
  std::vector<std::string> cats(one_hot.attribute(0).strings().begin(),
                                one_hot.attribute(0).strings().end());
  // The categories, then the missing-value tokens, which map to no category (no imputation).
  EXPECT_EQ(cats, (std::vector<std::string>{"Biscoe", "Dream", "", "NA", "NaN", "null"}));
  EXPECT_EQ(one_hot.attribute(1).name(), "zeros");
  EXPECT_EQ(one_hot.attribute(1).i(), 0) << "unknown_category error: ONNX Runtime refuses too";
  EXPECT_EQ(floats(initializer(model, "encode/0/map")),
            (std::vector<float>{1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(floats(initializer(model, "const/39")), std::vector<float>{39});  // median of one
  const onnx::ModelProto ignoring = parse_exported(build_onnx_model(table_predictor("ignore")));
  EXPECT_EQ(ignoring.graph().node(0).attribute(1).i(), 1);
  // Numeric columns as they are: the one "input" of every other model.
  const onnx::ModelProto plain = parse_exported(build_onnx_model(table_predictor("ignore", true)));
  ASSERT_EQ(plain.graph().input_size(), 1);
  EXPECT_EQ(plain.graph().input(0).name(), "input");
  EXPECT_EQ(plain.opset_import_size(), 1);
}

TEST(OnnxExport, UnknownLayerIsAnErrorNamingIt) {
  Generator init(0);
  auto model = make_sequential(json::array({{{"type", "linear"}, {"in", 2}, {"out", 2}}}), init);
  model->append(std::make_shared<Foo>());
  auto inner = std::make_shared<Sequential>();
  inner->append(std::make_shared<Foo>());
  const json task = {{"task", "classification"}, {"input_shape", {2}}};
  const Predictor top(LoadedBundle{model, {model->spec(), Preprocessing::none(), task, {}}});
  EXPECT_EQ(error_of([&] { build_onnx_model(top); }).substr(0, 79),
            "export: layer 1 'foo' has no ONNX form yet; layer types with one: avg_pool2d, b");

  auto nested = make_sequential(json::array({{{"type", "relu"}}}), init);
  nested->append(inner);
  const Predictor deep(LoadedBundle{nested, {nested->spec(), Preprocessing::none(), task, {}}});
  EXPECT_EQ(error_of([&] { build_onnx_model(deep); }).substr(0, 45),
            "export: layer 1.0 'foo' has no ONNX form yet;");
}

// Every layer type of lathe's own that takes features (the GPT, which takes token ids, has its own
// exporter: src/onnx/onnx_export_gpt.cpp, checked by the onnx_*_tiny_gpt ctests).
TEST(OnnxExport, EveryRegisteredLayerTypeHasAnOnnxForm) {
  const std::vector<std::string> exportable = onnx_layer_types();
  for (const LayerType& type : layer_types()) {
    if (type.input == LayerType::Input::Tokens) continue;
    EXPECT_NE(std::find(exportable.begin(), exportable.end(), type.name), exportable.end())
        << "layer type '" << type.name
        << "' has no ONNX form: add a function to the table in src/deploy/onnx_export.cpp";
  }
}

TEST(OnnxExport, WritesTheFileAtomically) {
  testing::TempDir dir;
  const Predictor predictor = make_predictor(kMlp, {6}, true);
  const auto path = dir.path() / "model.onnx";
  dir.write("model.onnx", "old contents");
  const OnnxModel exported = export_onnx(predictor, path);
  EXPECT_EQ(testing::read_file(path), exported.bytes);
  std::size_t files = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir.path()))
    ++files;
  EXPECT_EQ(files, 1u);  // no temporary left behind

  EXPECT_EQ(error_of([&] { export_onnx(predictor, dir.path() / "missing" / "model.onnx"); }),
            (dir.path() / "missing" / "model.onnx").string() + ": cannot write: the folder " +
                (dir.path() / "missing").string() + " does not exist");
}

TEST(OnnxExport, CommandLineWritesTheModel) {
  testing::TempDir dir;
  Generator init(3);
  auto model = make_sequential(kMlp, init);
  save_bundle(dir.path() / "bundle.safetensors", *model,
              {model->spec(),
               Preprocessing::none(),
               {{"task", "classification"}, {"input_shape", {6}}, {"classes", {"a", "b", "c"}}},
               json::object()});
  const std::string command =
      fmt::format("{} export {} {} > {} 2>&1", LATHE_CLI_PATH, dir / "bundle.safetensors",
                  dir / "model.onnx", dir / "log.txt");
  ASSERT_EQ(std::system(command.c_str()), 0) << testing::read_file(dir.path() / "log.txt");
  const std::string log = testing::read_file(dir.path() / "log.txt");
  EXPECT_NE(log.find("input:   input [N,6] float32"), std::string::npos) << log;
  EXPECT_NE(log.find("outputs: probabilities [N,3], logits [N,3]"), std::string::npos) << log;
  onnx::ModelProto exported;
  ASSERT_TRUE(exported.ParseFromString(testing::read_file(dir.path() / "model.onnx")));
  EXPECT_EQ(metadata(exported, "lathe.classes"), R"(["a","b","c"])");

  // An .onnx file loads like a bundle (ONNX import), so it exports again.
  const std::string again = fmt::format("{} export {} {} > {} 2>&1", LATHE_CLI_PATH,
                                        dir / "model.onnx", dir / "again.onnx", dir / "log2.txt");
  ASSERT_EQ(std::system(again.c_str()), 0) << testing::read_file(dir.path() / "log2.txt");
  EXPECT_NE(testing::read_file(dir.path() / "log2.txt")
                .find("outputs: probabilities [N,3], logits [N,3]"),
            std::string::npos);
  const std::string bad = fmt::format("{} export {} {} > {} 2>&1", LATHE_CLI_PATH, dir / "log.txt",
                                      dir / "bad.onnx", dir / "log3.txt");
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_NE(testing::read_file(dir.path() / "log3.txt").find("lathe: error: "), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "bad.onnx"));
}

}  // namespace
}  // namespace lathe
