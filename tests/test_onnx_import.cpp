// ONNX import: hostile models (each a clear error naming what is wrong, no crash, no huge
// allocation), tensor files, running a graph, and gradients through it. (Operator semantics are
// checked against ONNX's own test cases by the onnx_conformance ctest.)
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <fstream>

#include "lathe/lathe.h"
#include "lathe/onnx_import.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;
using testing::TempDir;

// The lathe command registers the onnx_graph type at start; so does this test binary, before any
// test runs, so that every test sees the registry the command has.
const bool kOnnxImportRegistered = [] {
  register_onnx_import();
  return true;
}();

onnx::TensorProto float_tensor(const std::string& name, const std::vector<std::int64_t>& dims,
                               const std::vector<float>& values) {
  onnx::TensorProto t;
  t.set_name(name);
  t.set_data_type(onnx::TensorProto::FLOAT);
  for (auto d : dims) t.add_dims(d);
  for (float v : values) t.add_float_data(v);
  return t;
}

void add_io(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list, const std::string& name,
            const std::vector<std::string>& dims, int type = onnx::TensorProto::FLOAT) {
  onnx::ValueInfoProto* info = list->Add();
  info->set_name(name);
  auto* tensor_type = info->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(type);
  for (const auto& d : dims) {
    auto* dim = tensor_type->mutable_shape()->add_dim();
    if (std::isdigit(static_cast<unsigned char>(d[0])))
      dim->set_dim_value(std::stoll(d));
    else
      dim->set_dim_param(d);
  }
}

onnx::NodeProto* add_node(onnx::GraphProto* graph, const std::string& op,
                          const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs, const std::string& name = "") {
  onnx::NodeProto* node = graph->add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const auto& i : inputs) node->add_input(i);
  for (const auto& o : outputs) node->add_output(o);
  return node;
}

// y = relu(x @ W + b), x [N, 2], W [2, 3], b [3].
onnx::ModelProto dense_model() {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto* g = model.mutable_graph();
  *g->add_initializer() = float_tensor("W", {2, 3}, {1, -1, 0.5f, 2, 1, -0.5f});
  *g->add_initializer() = float_tensor("b", {3}, {0.1f, 0.2f, -0.3f});
  add_io(g->mutable_input(), "x", {"N", "2"});
  add_io(g->mutable_output(), "y", {"N", "3"});
  add_node(g, "MatMul", {"x", "W"}, {"xw"}, "matmul");
  add_node(g, "Add", {"xw", "b"}, {"z"}, "bias");
  add_node(g, "Relu", {"z"}, {"y"}, "relu");
  return model;
}

OnnxGraph parse_graph(const onnx::ModelProto& model, const OnnxLimits& limits = {}) {
  return OnnxGraph::parse(model.SerializeAsString(), {}, limits);
}

std::string parse_error(const onnx::ModelProto& model, const OnnxLimits& limits = {}) {
  return error_of([&] { parse_graph(model, limits); });
}

TEST(OnnxImport, RunsADenseLayer) {
  const OnnxGraph graph = parse_graph(dense_model());
  ASSERT_EQ(graph.inputs().size(), 1u);
  EXPECT_EQ(graph.inputs()[0].describe(), "x float32 [N,2]");
  const Tensor x = Tensor::from_vector({1, 2, -1, 0.5}, {2, 2});
  const auto out = graph.run({{"x", {x, OnnxType::Float}}});
  ASSERT_EQ(out.size(), 1u);
  // Row 0: [1+4, -1+2, 0.5-1] + b = [5.1, 1.2, -0.8] -> relu; row 1: [0, 1.5, -0.75] + b.
  const std::vector<double> expected = {5.1, 1.2, 0, 0.1, 1.7, 0};
  const auto got = out[0].tensor.to_vector();
  for (std::size_t k = 0; k < expected.size(); ++k) EXPECT_NEAR(got[k], expected[k], 1e-6) << k;
}

TEST(OnnxImport, GradientsReachTheInitializers) {
  const OnnxGraph graph = parse_graph(dense_model());
  auto params = graph.parameters();
  ASSERT_EQ(params.size(), 2u);
  for (auto& p : params) p.tensor.requires_grad_(true);
  const Tensor x = Tensor::from_vector({1, 2, -1, 0.5}, {2, 2});
  const auto out = graph.run({{"x", {x, OnnxType::Float}}});
  sum(out[0].tensor).backward();
  for (const auto& p : params) {
    ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
    if (p.name == "b") {
      // Bias gradient: how many rows have each column active (both rows: 5.1, 1.2, -0.8 and
      // 0.1, 1.7, -1.05 before the relu).
      EXPECT_EQ(p.tensor.grad().to_vector(), (std::vector<double>{2, 2, 0}));
    }
  }
}

TEST(OnnxImport, RefusesInputsThatDoNotMatch) {
  const OnnxGraph graph = parse_graph(dense_model());
  EXPECT_NE(error_of([&] { graph.run({}); }).find("input 'x' is not given"), std::string::npos);
  const Tensor wrong_width = Tensor::zeros({2, 3});
  EXPECT_NE(error_of([&] {
              graph.run({{"x", {wrong_width, OnnxType::Float}}});
            }).find("input 'x' must have shape [N,2], got [2,3]"),
            std::string::npos);
  const Tensor ints = Tensor::zeros({2, 2}, DType::Int64);
  EXPECT_NE(error_of([&] {
              graph.run({{"x", {ints, OnnxType::Int64}}});
            }).find("must be float32, got int64"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              graph.run({{"x", {Tensor::zeros({1, 2}), OnnxType::Float}},
                         {"W", {Tensor::zeros({2, 3}), OnnxType::Float}}});
            }).find("'W' is not an input"),
            std::string::npos);
}

TEST(OnnxImport, HostileBytesAndTensors) {
  EXPECT_NE(error_of([] {
              OnnxGraph::parse("not a model at all \xff\xff", {});
            }).find("not a valid ONNX model"),
            std::string::npos);

  onnx::ModelProto overflow = dense_model();
  auto* w = overflow.mutable_graph()->mutable_initializer(0);
  w->clear_dims();
  w->add_dims(1ll << 40);
  w->add_dims(1ll << 40);
  EXPECT_NE(parse_error(overflow).find("initializer 'W': dimensions overflow"), std::string::npos);

  onnx::ModelProto negative = dense_model();
  negative.mutable_graph()->mutable_initializer(0)->set_dims(0, -2);
  EXPECT_NE(parse_error(negative).find("initializer 'W': negative dimension -2"),
            std::string::npos);

  onnx::ModelProto huge = dense_model();
  huge.mutable_graph()->mutable_initializer(0)->set_dims(0, 1ll << 30);
  EXPECT_NE(parse_error(huge).find("exceed the limit"), std::string::npos);

  onnx::ModelProto short_data = dense_model();
  short_data.mutable_graph()->mutable_initializer(0)->mutable_float_data()->RemoveLast();
  EXPECT_NE(parse_error(short_data).find("float_data holds 5 values but shape [2,3] needs 6"),
            std::string::npos);

  onnx::ModelProto raw = dense_model();
  auto* b = raw.mutable_graph()->mutable_initializer(1);
  b->clear_float_data();
  b->set_raw_data(std::string(11, '\0'));
  EXPECT_NE(parse_error(raw).find("raw_data has 11 bytes but shape [3] of float32 needs 12"),
            std::string::npos);

  onnx::ModelProto bad_type = dense_model();
  bad_type.mutable_graph()->mutable_initializer(1)->set_data_type(99);
  EXPECT_NE(parse_error(bad_type).find("unknown element type 99"), std::string::npos);
}

TEST(OnnxImport, HostileWiring) {
  onnx::ModelProto unknown = dense_model();
  unknown.mutable_graph()->mutable_node(1)->set_input(1, "nowhere");
  EXPECT_NE(parse_error(unknown).find(
                "node 'bias' (Add): input 'nowhere' is not a graph input, an initializer or any "
                "node's output"),
            std::string::npos);

  onnx::ModelProto cycle = dense_model();
  cycle.mutable_graph()->mutable_node(0)->set_input(0, "y");  // matmul reads relu's output
  EXPECT_NE(parse_error(cycle).find("the graph has a cycle through this node"), std::string::npos);

  onnx::ModelProto twice = dense_model();
  twice.mutable_graph()->mutable_node(1)->set_output(0, "xw");
  EXPECT_NE(parse_error(twice).find("output 'xw' is also produced by node"), std::string::npos);

  onnx::ModelProto no_output = dense_model();
  no_output.mutable_graph()->mutable_output(0)->set_name("missing");
  EXPECT_NE(parse_error(no_output).find("graph output 'missing' is not produced"),
            std::string::npos);

  onnx::ModelProto unsupported = dense_model();
  unsupported.mutable_graph()->mutable_node(2)->set_op_type("FancyOp");
  EXPECT_THROW(parse_graph(unsupported), OnnxUnsupported);
  EXPECT_NE(
      parse_error(unsupported).find("node 'relu' (FancyOp): operator FancyOp is not supported"),
      std::string::npos);

  onnx::ModelProto domain = dense_model();
  domain.mutable_graph()->mutable_node(2)->set_domain("com.example");
  EXPECT_NE(parse_error(domain).find(
                "node 'relu' (Relu): operators of domain 'com.example' are not supported"),
            std::string::npos);

  onnx::ModelProto future = dense_model();
  future.mutable_opset_import(0)->set_version(99);
  EXPECT_NE(parse_error(future).find("operator set version 99"), std::string::npos);
}

TEST(OnnxImport, ExternalDataStaysInTheModelsFolder) {
  const TempDir temp;
  const auto dir = temp.path();
  std::filesystem::create_directories(dir / "model");
  {
    std::ofstream out(dir / "model" / "weights.bin", std::ios::binary);
    const std::vector<float> w = {1, -1, 0.5f, 2, 1, -0.5f};
    out.write(reinterpret_cast<const char*>(w.data()), 24);
    std::ofstream secret(dir / "secret.bin", std::ios::binary);
    secret.write(reinterpret_cast<const char*>(w.data()), 24);
  }
  auto with_location = [&](const std::string& location) {
    onnx::ModelProto model = dense_model();
    auto* w = model.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* entry = w->add_external_data();
    entry->set_key("location");
    entry->set_value(location);
    const auto path = dir / "model" / "model.onnx";
    std::ofstream(path, std::ios::binary) << model.SerializeAsString();
    return path;
  };
  const OnnxGraph ok = OnnxGraph::load(with_location("weights.bin"));
  EXPECT_EQ(ok.run({{"x", {Tensor::from_vector({1, 2}, {1, 2}), OnnxType::Float}}})[0]
                .tensor.to_vector()[0],
            5.1f);
  EXPECT_NE(error_of([&] {
              OnnxGraph::load(with_location("../secret.bin"));
            }).find("external data location '../secret.bin' leaves the model's folder"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              OnnxGraph::load(with_location((dir / "secret.bin").string()));
            }).find("must be a relative path inside the model's folder"),
            std::string::npos);
  std::filesystem::create_symlink(dir / "secret.bin", dir / "model" / "link.bin");
  EXPECT_NE(error_of([&] {
              OnnxGraph::load(with_location("link.bin"));
            }).find("leaves the model's folder (through a link)"),
            std::string::npos);
  std::ifstream in(with_location("weights.bin"), std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(error_of([&] {
              OnnxGraph::parse(bytes, {});
            }).find("only read for a model loaded from a file"),
            std::string::npos);
}

TEST(OnnxImport, NodeOutputsRespectTheSizeLimit) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(17);
  onnx::GraphProto* g = model.mutable_graph();
  onnx::TensorProto shape;
  shape.set_name("shape");
  shape.set_data_type(onnx::TensorProto::INT64);
  shape.add_dims(2);
  shape.add_int64_data(1 << 20);
  shape.add_int64_data(1 << 20);
  *g->add_initializer() = shape;
  add_node(g, "ConstantOfShape", {"shape"}, {"y"}, "fill");
  add_io(g->mutable_output(), "y", {"?", "?"});
  OnnxLimits limits;
  limits.max_tensor_bytes = 1 << 20;
  const OnnxGraph graph = parse_graph(model, limits);
  EXPECT_NE(error_of([&] { graph.run({}); }).find("node 'fill' (ConstantOfShape)"),
            std::string::npos);
}

TEST(OnnxImport, TensorFilesRoundTrip) {
  const TempDir temp;
  const auto dir = temp.path();
  const OnnxValue value{Tensor::from_vector({1, 2, 3, 300}, {2, 2}, DType::Int64), OnnxType::Int32};
  write_onnx_tensor_file(dir / "t.pb", value, "t");
  const OnnxValue back = read_onnx_tensor_file(dir / "t.pb");
  EXPECT_EQ(back.type, OnnxType::Int32);
  EXPECT_EQ(back.shape(), (Shape{2, 2}));
  EXPECT_EQ(back.tensor.to_vector(), (std::vector<double>{1, 2, 3, 300}));

  // A NumPy file as numpy.save writes it: float32 [2, 3].
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  header.resize(117, ' ');
  header += '\n';
  std::string npy = std::string("\x93NUMPY\x01\x00", 8) + char(header.size()) + char(0) + header;
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  npy.append(reinterpret_cast<const char*>(v.data()), 24);
  std::ofstream(dir / "x.npy", std::ios::binary) << npy;
  const OnnxValue x = read_onnx_tensor_file(dir / "x.npy");
  EXPECT_EQ(x.type, OnnxType::Float);
  EXPECT_EQ(x.shape(), (Shape{2, 3}));
  EXPECT_EQ(x.tensor.to_vector()[5], 6);
  std::ofstream(dir / "short.npy", std::ios::binary) << npy.substr(0, npy.size() - 4);
  EXPECT_NE(error_of([&] {
              read_onnx_tensor_file(dir / "short.npy");
            }).find(".npy data has 20 bytes but shape (2, 3) needs 24"),
            std::string::npos);
  std::ofstream(dir / "junk.pb", std::ios::binary) << "\xff\xff\xff";
  EXPECT_NE(error_of([&] { read_onnx_tensor_file(dir / "junk.pb"); }).find("not a serialized"),
            std::string::npos);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

std::filesystem::path save_model(const testing::TempDir& dir, const onnx::ModelProto& model,
                                 const std::string& name) {
  return dir.write(name, model.SerializeAsString());
}

TEST(OnnxImport, AChainOfLayerFormsBecomesLatheLayers) {
  const testing::TempDir dir;
  const LoadedBundle lowered = import_onnx(save_model(dir, dense_model(), "dense.onnx"));
  EXPECT_EQ(lowered.info.architecture["layers"][0]["type"], "linear");
  EXPECT_EQ(lowered.info.architecture["layers"][1]["type"], "relu");
  EXPECT_EQ(lowered.info.metrics.value("lowered_to_layers", false), true);
  OnnxImportOptions keep;
  keep.keep_graph = true;
  const LoadedBundle graph = import_onnx(dir.path() / "dense.onnx", keep);
  EXPECT_EQ(graph.info.architecture["type"], "onnx_graph");
  const Tensor x = Tensor::from_vector({1, 2, -1, 0.5, 3, -2}, {3, 2});
  const auto a = lowered.model->forward(x).to_vector(), b = graph.model->forward(x).to_vector();
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t k = 0; k < a.size(); ++k) EXPECT_NEAR(a[k], b[k], 1e-6);
}

// PyTorch without dynamic_axes: the batch is fixed at the example's size. Any number of rows
// runs, the last group filled up with zeros whose answers are dropped.
TEST(OnnxImport, AFixedBatchGraphRunsAnyNumberOfRows) {
  const testing::TempDir dir;
  onnx::ModelProto model = dense_model();
  model.mutable_graph()
      ->mutable_input(0)
      ->mutable_type()
      ->mutable_tensor_type()
      ->mutable_shape()
      ->mutable_dim(0)
      ->set_dim_value(2);
  OnnxImportOptions keep;
  keep.keep_graph = true;
  const LoadedBundle graph = import_onnx(save_model(dir, model, "fixed2.onnx"), keep);
  const LoadedBundle lowered = import_onnx(dir.path() / "fixed2.onnx");
  EXPECT_EQ(graph.info.architecture["type"], "onnx_graph");
  for (const std::int64_t rows : {1, 2, 3, 5}) {
    std::vector<double> values;
    for (std::int64_t k = 0; k < 2 * rows; ++k) values.push_back(0.5 * static_cast<double>(k) - 1);
    const Tensor x = Tensor::from_vector(values, {rows, 2});
    const Tensor a = graph.model->forward(x), b = lowered.model->forward(x);
    EXPECT_EQ(a.shape(), (Shape{rows, 3})) << rows;
    const auto av = a.to_vector(), bv = b.to_vector();
    ASSERT_EQ(av.size(), bv.size());
    for (std::size_t k = 0; k < av.size(); ++k) EXPECT_NEAR(av[k], bv[k], 1e-6) << rows;
  }
}

// torch.onnx writes the scalar of `x * 0.5` as a Constant node, not an initializer: it becomes
// the bundle's preprocessing all the same.
TEST(OnnxImport, AScalarFromAConstantNodeBecomesPreprocessing) {
  const testing::TempDir dir;
  onnx::ModelProto model = dense_model();
  onnx::GraphProto* g = model.mutable_graph();
  g->mutable_node(0)->set_input(0, "scaled");
  onnx::NodeProto* constant = add_node(g, "Constant", {}, {"half"}, "constant");
  onnx::AttributeProto* value = constant->add_attribute();
  value->set_name("value");
  value->set_type(onnx::AttributeProto::TENSOR);
  *value->mutable_t() = float_tensor("", {}, {0.5f});
  add_node(g, "Mul", {"x", "half"}, {"scaled"}, "scale");
  const LoadedBundle bundle = import_onnx(save_model(dir, model, "scaled.onnx"));
  EXPECT_EQ(bundle.info.architecture["layers"][0]["type"], "linear");
  EXPECT_EQ(bundle.info.preprocessing.to_json(), Preprocessing::normalize(0.5, 0, 1).to_json());
}

// (x / 255 - 0.5) / 0.5, as `transforms`-style code writes it: not the (x * scale - mean) / std
// order, so the preprocessing is the affine map the three make, x * 2/255 - 1.
TEST(OnnxImport, ScalarPreprocessingInAnyOrderBecomesOneAffineMap) {
  const testing::TempDir dir;
  onnx::ModelProto model = dense_model();
  onnx::GraphProto* g = model.mutable_graph();
  g->mutable_node(0)->set_input(0, "normalized");
  *g->add_initializer() = float_tensor("c255", {}, {255});
  *g->add_initializer() = float_tensor("half", {}, {0.5f});
  add_node(g, "Div", {"x", "c255"}, {"scaled"}, "scale");
  add_node(g, "Sub", {"scaled", "half"}, {"centred"}, "centre");
  add_node(g, "Div", {"centred", "half"}, {"normalized"}, "spread");
  const LoadedBundle bundle = import_onnx(save_model(dir, model, "divided.onnx"));
  ASSERT_EQ(bundle.info.architecture["layers"][0]["type"], "linear");
  const Tensor x = Tensor::from_vector({0, 255, 127, 30}, {2, 2});
  const std::vector<double> expected = {-1, 1, 127 * 2 / 255.0 - 1, 30 * 2 / 255.0 - 1};
  const std::vector<double> got = bundle.info.preprocessing.apply(x).to_vector();
  for (std::size_t k = 0; k < expected.size(); ++k) EXPECT_NEAR(got[k], expected[k], 1e-6) << k;
}

TEST(OnnxImport, AGraphWithoutLayerFormsStaysAGraphAndSaysWhy) {
  const testing::TempDir dir;
  onnx::ModelProto model = dense_model();
  model.mutable_graph()->mutable_node(2)->set_op_type("Elu");
  const LoadedBundle bundle = import_onnx(save_model(dir, model, "elu.onnx"));
  EXPECT_EQ(bundle.info.architecture["type"], "onnx_graph");
  EXPECT_EQ(bundle.info.metrics.value("graph_kept_because", ""), "operator Elu has no lathe layer");
}

TEST(OnnxImport, PyTorchsBiasFirstAddLowersAndABranchStaysAGraph) {
  const TempDir dir;
  onnx::ModelProto bias_first = dense_model();
  auto* add = bias_first.mutable_graph()->mutable_node(1);
  add->set_input(0, "b");  // Add(b, xw), as torch.onnx writes nn.Linear on its MatMul path
  add->set_input(1, "xw");
  EXPECT_EQ(
      import_onnx(save_model(dir, bias_first, "b.onnx")).info.architecture["layers"][0]["type"],
      "linear");

  onnx::ModelProto residual = dense_model();
  auto* skip = residual.mutable_graph()->mutable_node(2);  // y = z + xw instead of relu(z)
  skip->set_op_type("Add");
  skip->add_input("xw");
  const LoadedBundle bundle = import_onnx(save_model(dir, residual, "r.onnx"));
  EXPECT_EQ(bundle.info.architecture["type"], "onnx_graph");
  EXPECT_NE(bundle.info.metrics.value("graph_kept_because", "")
                .find("(a branch or a residual connection), which a chain of lathe layers"),
            std::string::npos)
      << bundle.info.metrics.dump();
}

TEST(OnnxImport, AModelFromAFileReturnsLogitsNotASoftmax) {
  const TempDir dir;
  onnx::ModelProto model = dense_model();
  auto* softmax = model.mutable_graph()->add_node();
  softmax->set_op_type("Softmax");
  softmax->add_input("y");
  softmax->add_output("probs");
  model.mutable_graph()->mutable_output(0)->set_name("probs");
  const auto path = save_model(dir, model, "softmax.onnx");
  Generator g(0);
  const auto module = make_layer({{"type", "onnx_graph"}, {"file", path.string()}}, g);
  EXPECT_EQ(module->spec()["output"], "y");
  const Tensor x = Tensor::from_vector({1, 2}, {1, 2});
  EXPECT_NEAR(module->forward(x).to_vector()[0], 5.1, 1e-5);  // relu's output, not a probability
  // An intermediate value can be the output too.
  const auto inner =
      make_layer({{"type", "onnx_graph"}, {"file", path.string()}, {"output", "xw"}}, g);
  EXPECT_NEAR(inner->forward(x).to_vector()[2], 0.5 - 1, 1e-5);
}

TEST(OnnxImport, ExternalDataIsReadIntoTheBundle) {
  const TempDir dir;
  std::filesystem::create_directories(dir.path() / "m");
  const std::vector<float> w = {1, -1, 0.5f, 2, 1, -0.5f};
  std::ofstream(dir.path() / "m" / "w.bin", std::ios::binary)
      .write(reinterpret_cast<const char*>(w.data()), 24);
  onnx::ModelProto model = dense_model();
  auto* t = model.mutable_graph()->mutable_initializer(0);
  t->clear_float_data();
  t->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* entry = t->add_external_data();
  entry->set_key("location");
  entry->set_value("w.bin");
  std::ofstream(dir.path() / "m" / "model.onnx", std::ios::binary) << model.SerializeAsString();
  OnnxImportOptions keep;
  keep.keep_graph = true;
  const LoadedBundle bundle = import_onnx(dir.path() / "m" / "model.onnx", keep);
  save_bundle(dir.path() / "b.safetensors", *bundle.model, bundle.info);
  std::filesystem::remove(dir.path() / "m" / "w.bin");
  const LoadedBundle back = load_bundle(dir.path() / "b.safetensors");
  EXPECT_NEAR(back.model->forward(Tensor::from_vector({1, 2}, {1, 2})).to_vector()[0], 5.1, 1e-5);
}

}  // namespace
}  // namespace lathe
