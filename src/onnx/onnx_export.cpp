// ONNX export: the bundle's preprocessing, its layers and the output head as one ONNX graph.
//
// Each layer type has one function in the table at the bottom of the layer section
// (`layer_exporters`): it gets the layer's spec (defaults filled in), its parameters by local
// name, and the incoming value with its per-example shape, adds nodes, and returns the outgoing
// value. Adding a layer to lathe means adding one function and one table line here.
#include <fmt/format.h>
#include <google/protobuf/text_format.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <map>
#include <set>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/onnx.h"
#include "lathe/ops.h"
#include "lathe/version.h"
#include "src/onnx/onnx_export_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using namespace onnx_export;

// A value flowing through the graph: its name and its shape without the batch axis.
struct Value {
  std::string name;
  Shape shape;
};

class LayerContext;
using LayerExporter = Value (*)(LayerContext& layer, const Value& input);
const std::map<std::string, LayerExporter>& layer_exporters();

// What a layer's export function sees: its spec, its parameters, names for its values.
class LayerContext {
 public:
  LayerContext(GraphBuilder& graph, const json& spec, std::string path,
               const std::map<std::string, Tensor>& state, std::set<std::string>& used)
      : graph(graph), spec(spec), path_(std::move(path)), state_(state), used_(used) {}

  GraphBuilder& graph;
  const json& spec;  // the layer's spec with defaults filled in

  // "layer 3" (top level) or "layer 2.1" (inside a nested sequential) for messages.
  std::string label() const { return path_.empty() ? "the model" : "layer " + path_; }

  // The prefix of this layer's value names: "3", or "model" for the whole model.
  std::string prefix() const { return path_.empty() ? std::string("model") : path_; }

  // A name for one of this layer's values: "3/gemm".
  std::string value(const std::string& suffix) const { return prefix() + "/" + suffix; }

  // Adds the layer's parameter or buffer `local` ("weight") as an initializer under its bundle
  // name ("3.weight") and returns that name.
  std::string parameter(const std::string& local) {
    const std::string name = path_.empty() ? local : path_ + "." + local;
    auto found = state_.find(name);
    if (found == state_.end())
      throw Error(fmt::format("export: {} '{}' has no tensor '{}'", label(), type(), name));
    if (used_.insert(name).second) graph.initializer(name, found->second, found->second.shape());
    return name;
  }

  std::string type() const { return spec.value("type", "?"); }

  // Exports child `index` of a container layer (a nested sequential).
  Value child(std::size_t index, const json& child_spec, const Value& input);

 private:
  std::string path_;
  const std::map<std::string, Tensor>& state_;
  std::set<std::string>& used_;
};

Value export_layer(GraphBuilder& graph, const json& spec, const std::string& path,
                   const std::map<std::string, Tensor>& state, std::set<std::string>& used,
                   const Value& input) {
  const std::string label = path.empty() ? "the model" : "layer " + path;
  const std::string type = spec.is_object() ? spec.value("type", "") : "";
  auto exporter = layer_exporters().find(type);
  if (exporter == layer_exporters().end())
    throw Error(fmt::format("export: {} '{}' has no ONNX form yet; layer types with one: {}", label,
                            type, fmt::join(onnx_layer_types(), ", ")));
  json full = spec;
  if (type != "sequential") {
    try {
      full = validate_layer_spec(spec);
    } catch (const LayerSpecError& e) {
      throw Error(fmt::format("export: {}: {}", label, e.what()));
    }
  }
  LayerContext context(graph, full, path, state, used);
  return exporter->second(context, input);
}

Value LayerContext::child(std::size_t index, const json& child_spec, const Value& input) {
  const std::string child_path =
      path_.empty() ? std::to_string(index) : path_ + "." + std::to_string(index);
  return export_layer(graph, child_spec, child_path, state_, used_, input);
}

// ---- One function per layer type ----

Value export_sequential(LayerContext& layer, const Value& input) {
  if (!layer.spec.contains("layers") || !layer.spec["layers"].is_array())
    throw Error(fmt::format("export: {} 'sequential' has no \"layers\" list", layer.label()));
  Value x = input;
  for (std::size_t i = 0; i < layer.spec["layers"].size(); ++i)
    x = layer.child(i, layer.spec["layers"][i], x);
  return x;
}

// ONNX Flatten with axis 1 is lathe's [N, d1, d2, ...] -> [N, d1 * d2 * ...].
Value export_flatten(LayerContext& layer, const Value& x) {
  set_attribute(layer.graph.add("Flatten", {x.name}, layer.value("flatten")), "axis",
                std::int64_t{1});
  return {layer.value("flatten"), {shape_numel(x.shape)}};
}

// y = x W^T + b with W stored [out, in]: Gemm(transB = 1) on [N, in]; for inputs of higher rank
// (Linear acts on the last axis) MatMul with the transposed weight, then Add.
Value export_linear(LayerContext& layer, const Value& x) {
  const auto in = layer.spec["in"].get<std::int64_t>();
  const auto out = layer.spec["out"].get<std::int64_t>();
  if (x.shape.empty() || x.shape.back() != in)
    throw Error(fmt::format("export: {} 'linear' takes {} features but gets examples of shape {}",
                            layer.label(), in, shape_str(x.shape)));
  Shape shape = x.shape;
  shape.back() = out;
  const std::string weight = layer.parameter("weight");
  const bool bias = layer.spec["bias"].get<bool>();
  if (x.shape.size() == 1) {
    std::vector<std::string> inputs{x.name, weight};
    if (bias) inputs.push_back(layer.parameter("bias"));
    set_attribute(layer.graph.add("Gemm", inputs, layer.value("gemm")), "transB", std::int64_t{1});
    return {layer.value("gemm"), shape};
  }
  set_attribute(layer.graph.add("Transpose", {weight}, layer.value("weight_t")), "perm",
                std::vector<std::int64_t>{1, 0});
  layer.graph.add("MatMul", {x.name, layer.value("weight_t")}, layer.value("matmul"));
  if (!bias) return {layer.value("matmul"), shape};
  layer.graph.add("Add", {layer.value("matmul"), layer.parameter("bias")}, layer.value("add"));
  return {layer.value("add"), shape};
}

// Identity at inference: no node at all.
Value export_dropout(LayerContext&, const Value& x) {
  return x;
}

Value unary_node(LayerContext& layer, const Value& x, const std::string& op) {
  layer.graph.add(op, {x.name}, layer.value(op));
  return {layer.value(op), x.shape};
}

Value export_relu(LayerContext& layer, const Value& x) {
  return unary_node(layer, x, "Relu");
}
Value export_sigmoid(LayerContext& layer, const Value& x) {
  return unary_node(layer, x, "Sigmoid");
}
Value export_tanh(LayerContext& layer, const Value& x) {
  return unary_node(layer, x, "Tanh");
}

Value export_leaky_relu(LayerContext& layer, const Value& x) {
  set_attribute(layer.graph.add("LeakyRelu", {x.name}, layer.value("LeakyRelu")), "alpha",
                static_cast<float>(layer.spec["negative_slope"].get<double>()));
  return {layer.value("LeakyRelu"), x.shape};
}

// ONNX has Gelu only from opset 20, so it is composed (add_gelu).
Value export_gelu(LayerContext& layer, const Value& x) {
  const bool tanh = layer.spec["approximate"].get<std::string>() == "tanh";
  return {add_gelu(layer.graph, x.name, tanh, layer.prefix()), x.shape};
}

std::int64_t integer(LayerContext& layer, const char* key) {
  return layer.spec[key].get<std::int64_t>();
}

Shape image_shape(LayerContext& layer, const Value& x) {
  if (x.shape.size() != 3)
    throw Error(fmt::format("export: {} '{}' takes [C, H, W] examples but gets {}", layer.label(),
                            layer.type(), shape_str(x.shape)));
  return x.shape;
}

// Conv with square kernel_shape, strides, dilations, symmetric pads and group.
Value export_conv2d(LayerContext& layer, const Value& x) {
  const Shape in = image_shape(layer, x);
  const std::int64_t k = integer(layer, "kernel_size"), stride = integer(layer, "stride"),
                     padding = integer(layer, "padding"), dilation = integer(layer, "dilation");
  std::vector<std::string> inputs{x.name, layer.parameter("weight")};
  if (layer.spec["bias"].get<bool>()) inputs.push_back(layer.parameter("bias"));
  onnx::NodeProto& node = layer.graph.add("Conv", inputs, layer.value("conv"));
  set_attribute(node, "kernel_shape", std::vector<std::int64_t>{k, k});
  set_attribute(node, "strides", std::vector<std::int64_t>{stride, stride});
  set_attribute(node, "pads", std::vector<std::int64_t>{padding, padding, padding, padding});
  set_attribute(node, "dilations", std::vector<std::int64_t>{dilation, dilation});
  set_attribute(node, "group", integer(layer, "groups"));
  return {layer.value("conv"),
          {integer(layer, "out"), conv_output_size(in[1], k, stride, padding, dilation),
           conv_output_size(in[2], k, stride, padding, dilation)}};
}

Value pool(LayerContext& layer, const Value& x, const std::string& op) {
  const Shape in = image_shape(layer, x);
  const std::int64_t k = integer(layer, "kernel_size"), padding = integer(layer, "padding");
  const std::int64_t stride = layer.spec.contains("stride") ? integer(layer, "stride") : k;
  onnx::NodeProto& node = layer.graph.add(op, {x.name}, layer.value(op));
  set_attribute(node, "kernel_shape", std::vector<std::int64_t>{k, k});
  set_attribute(node, "strides", std::vector<std::int64_t>{stride, stride});
  set_attribute(node, "pads", std::vector<std::int64_t>{padding, padding, padding, padding});
  if (op == "AveragePool") set_attribute(node, "count_include_pad", std::int64_t{1});
  return {layer.value(op),
          {in[0], conv_output_size(in[1], k, stride, padding, 1),
           conv_output_size(in[2], k, stride, padding, 1)}};
}

Value export_max_pool2d(LayerContext& layer, const Value& x) {
  return pool(layer, x, "MaxPool");
}
Value export_avg_pool2d(LayerContext& layer, const Value& x) {
  return pool(layer, x, "AveragePool");
}

// GlobalAveragePool keeps [C, 1, 1]; Flatten makes it lathe's [C].
Value export_global_avg_pool(LayerContext& layer, const Value& x) {
  const Shape in = image_shape(layer, x);
  layer.graph.add("GlobalAveragePool", {x.name}, layer.value("pool"));
  set_attribute(layer.graph.add("Flatten", {layer.value("pool")}, layer.value("flatten")), "axis",
                std::int64_t{1});
  return {layer.value("flatten"), {in[0]}};
}

// Inference form: the running statistics.
Value export_batch_norm(LayerContext& layer, const Value& x) {
  onnx::NodeProto& node =
      layer.graph.add("BatchNormalization",
                      {x.name, layer.parameter("weight"), layer.parameter("bias"),
                       layer.parameter("running_mean"), layer.parameter("running_var")},
                      layer.value("batch_norm"));
  set_attribute(node, "epsilon", static_cast<float>(layer.spec["eps"].get<double>()));
  return {layer.value("batch_norm"), x.shape};
}

Value export_reshape(LayerContext& layer, const Value& x) {
  const Shape shape = layer.spec["shape"].get<Shape>();
  if (shape_numel(shape) != shape_numel(x.shape))
    throw Error(fmt::format("export: {} 'reshape' to {} gets examples of shape {}", layer.label(),
                            shape_str(shape), shape_str(x.shape)));
  Shape with_batch{-1};
  with_batch.insert(with_batch.end(), shape.begin(), shape.end());
  layer.graph.add("Reshape", {x.name, layer.graph.int64s(layer.value("shape"), with_batch)},
                  layer.value("reshape"));
  return {layer.value("reshape"), shape};
}

// A model imported from ONNX (lathe import), fine-tuned or not, goes back in as it came: its
// nodes and integer initializers copied with every value renamed under the layer's prefix, its
// float32 weights the layer's current parameters. The model is written in operator set 17, so
// only graphs of sets 13 to 17 are copied: every change to an operator lathe runs between 13
// and 17 added types, or attributes whose defaults keep the old behaviour (Reshape's allowzero,
// Shape's start/end, the scatters' reduction, BatchNormalization's training_mode), whereas
// before 13 Softmax, Split, Squeeze, Unsqueeze, the reductions and others meant other things.
Value export_onnx_graph(LayerContext& layer, const Value& x) {
  onnx::ModelProto model;
  if (!google::protobuf::TextFormat::ParseFromString(layer.spec.value("graph", ""), &model))
    throw Error(
        fmt::format("export: {} 'onnx_graph' has no graph (a model built from a file is "
                    "exported from its bundle)",
                    layer.label()));
  for (const auto& opset : model.opset_import())
    if ((opset.domain().empty() || opset.domain() == "ai.onnx") &&
        (opset.version() < 13 || opset.version() > kOnnxOpsetVersion))
      throw Error(fmt::format(
          "export: {} is an imported graph of operator set {}; lathe writes operator set {} and "
          "copies only graphs of sets 13 to {}, whose operators mean the same there (the "
          "original .onnx file still runs as it is)",
          layer.label(), opset.version(), kOnnxOpsetVersion, kOnnxOpsetVersion));
  const onnx::GraphProto& g = model.graph();
  std::map<std::string, std::string> renamed{{"", ""}};
  for (const auto& t : g.initializer()) {
    if (t.data_type() == onnx::TensorProto::FLOAT) {
      renamed[t.name()] = layer.parameter(t.name());
      continue;
    }
    if (t.data_type() == onnx::TensorProto::FLOAT16 || t.data_type() == onnx::TensorProto::BFLOAT16)
      throw Error(
          fmt::format("export: {}: initializer '{}' is float16; re-exporting 16-bit "
                      "weights is not supported",
                      layer.label(), t.name()));
    onnx::TensorProto copy = t;
    copy.set_name(layer.value(t.name()));
    renamed[t.name()] = copy.name();
    layer.graph.tensor(copy);
  }
  std::string input = layer.spec.value("input", "");
  for (const auto& in : g.input())
    if (input.empty() && !renamed.count(in.name())) input = in.name();
  renamed[input] = x.name;
  auto name_of = [&](const std::string& value) {
    auto it = renamed.find(value);
    return it != renamed.end() ? it->second : renamed[value] = layer.value(value);
  };
  for (onnx::NodeProto node : g.node()) {
    for (std::string& in : *node.mutable_input()) in = name_of(in);
    for (std::string& out : *node.mutable_output()) out = name_of(out);
    node.set_name(layer.value(node.name().empty() ? node.output(0) : node.name()));
    layer.graph.node(node);
  }
  std::string output = layer.spec.value("output", "");
  if (output.empty() && g.output_size() > 0) output = g.output(0).name();
  // The output's shape for one example, from the graph itself.
  Generator generator(0);
  const auto module = make_layer(layer.spec, generator);
  Shape example{1};
  example.insert(example.end(), x.shape.begin(), x.shape.end());
  NoGradGuard no_grad;  // a shape probe: nodes without gradients must not refuse to run
  const Tensor probe = module->forward(Tensor::zeros(example));
  return {name_of(output), Shape(probe.shape().begin() + 1, probe.shape().end())};
}

const std::map<std::string, LayerExporter>& layer_exporters() {
  static const std::map<std::string, LayerExporter> table{
      {"sequential", export_sequential},
      {"flatten", export_flatten},
      {"linear", export_linear},
      {"dropout", export_dropout},
      {"relu", export_relu},
      {"leaky_relu", export_leaky_relu},
      {"sigmoid", export_sigmoid},
      {"tanh", export_tanh},
      {"gelu", export_gelu},
      {"conv2d", export_conv2d},
      {"max_pool2d", export_max_pool2d},
      {"avg_pool2d", export_avg_pool2d},
      {"global_avg_pool", export_global_avg_pool},
      {"batch_norm1d", export_batch_norm},
      {"batch_norm2d", export_batch_norm},
      {"reshape", export_reshape},
      {"onnx_graph", export_onnx_graph},
  };
  return table;
}

// ---- The graph around the layers ----

OnnxTensorInfo batched(const std::string& name, const Shape& shape) {
  OnnxTensorInfo info{name, {"N"}};
  for (std::int64_t d : shape) info.shape.push_back(std::to_string(d));
  return info;
}

// x * scale, then (x - mean) / std with one value or one per feature (shaped like an example, so
// it broadcasts over the batch). Steps that would not change the input are left out.
Value add_preprocessing(GraphBuilder& g, const Preprocessing& p, const Value& raw) {
  const std::int64_t features = shape_numel(raw.shape);
  const auto per_feature = [&](const std::vector<double>& values, const char* what) {
    if (values.size() != 1 && static_cast<std::int64_t>(values.size()) != features)
      throw Error(
          fmt::format("export: preprocessing has {} {} values but examples have {} features",
                      values.size(), what, features));
    return values.size() == 1 ? Shape{} : raw.shape;
  };
  const auto all_equal = [](const std::vector<double>& values, double x) {
    for (double v : values)
      if (v != x) return false;
    return true;
  };
  Value x = raw;
  if (p.scale() != 1) {
    g.initializer("preprocess.scale", Tensor::scalar(p.scale()), {});
    g.add("Mul", {x.name, "preprocess.scale"}, "preprocess/scaled");
    x.name = "preprocess/scaled";
  }
  if (!all_equal(p.mean(), 0)) {
    const Shape shape = per_feature(p.mean(), "mean");
    g.initializer("preprocess.mean", Tensor::from_vector(p.mean(), {shape_numel(shape)}), shape);
    g.add("Sub", {x.name, "preprocess.mean"}, "preprocess/centered");
    x.name = "preprocess/centered";
  }
  if (!all_equal(p.std(), 1)) {
    const Shape shape = per_feature(p.std(), "std");
    g.initializer("preprocess.std", Tensor::from_vector(p.std(), {shape_numel(shape)}), shape);
    g.add("Div", {x.name, "preprocess.std"}, "preprocess/standardized");
    x.name = "preprocess/standardized";
  }
  return x;
}

}  // namespace

std::string OnnxTensorInfo::describe() const {
  return fmt::format("{} [{}]", name, fmt::join(shape, ","));
}

std::vector<std::string> onnx_layer_types() {
  std::vector<std::string> types;
  for (const auto& [type, exporter] : layer_exporters()) types.push_back(type);
  return types;
}

// A model trained on a table whose encoding is not the identity: one graph input per column,
// [N, 1], encoded as TableEncoding::transform does and concatenated into the features the model
// takes. Numeric columns are float32 with NaN for a missing value: IsNaN, Where for the imputed
// value, a Cast of the mask for an indicator. Categorical columns are strings: ONNX-ML's
// OneHotEncoder over the categories and the missing-value tokens, then one MatMul that maps a
// token's column to the imputed category (and the indicator). An unknown category is all zeros
// with unknown_category "ignore"; with "error" OneHotEncoder's zeros = 0 makes it a runtime
// error. Where lathe refuses a missing value (no imputation) the graph gives NaN (numeric) or
// zeros (categorical) instead.
Value add_table_encoding(GraphBuilder& g, onnx::GraphProto& graph, const TableEncoding& encoding,
                         std::vector<OnnxTensorInfo>& inputs) {
  std::vector<std::string> parts;
  for (std::size_t c = 0; c < encoding.columns().size(); ++c) {
    const EncodedColumn& column = encoding.columns()[c];
    const bool numeric = column.kind == EncodedColumn::Kind::Numeric;
    // The graph's own values are named "encoded", "probabilities", "0/gemm", "const/0.5"...
    const bool own_name = column.name == "encoded" || column.name == "probabilities" ||
                          column.name == "logits" || column.name == "output" ||
                          column.name.find('/') != std::string::npos;
    if (own_name || !g.reserve(column.name))
      throw Error(fmt::format(
          "export: column '{}' cannot be an input of the ONNX graph, whose inputs are named "
          "after the columns: the graph uses that name itself (names with '/', encoded, "
          "probabilities, logits, output and input are its own); rename the column",
          column.name));
    OnnxTensorInfo input{column.name, {"N", "1"}, numeric ? "float32" : "string"};
    onnx::ValueInfoProto& info = *graph.add_input();
    info.set_name(input.name);
    onnx::TypeProto_Tensor* type = info.mutable_type()->mutable_tensor_type();
    type->set_elem_type(numeric ? onnx::TensorProto::FLOAT : onnx::TensorProto::STRING);
    type->mutable_shape()->add_dim()->set_dim_param("N");
    type->mutable_shape()->add_dim()->set_dim_value(1);
    inputs.push_back(input);

    const std::string prefix = fmt::format("encode/{}", c);
    if (numeric) {
      std::string x = column.name;
      const std::string missing = prefix + "/missing";
      if (column.impute != "none" || column.indicator) g.add("IsNaN", {x}, missing);
      if (column.impute != "none") {
        g.add("Where", {missing, g.scalar(column.fill_number), x}, prefix + "/imputed");
        x = prefix + "/imputed";
      }
      parts.push_back(x);
      if (column.indicator) {
        set_attribute(g.add("Cast", {missing}, prefix + "/indicator"), "to",
                      std::int64_t{onnx::TensorProto::FLOAT});
        parts.push_back(prefix + "/indicator");
      }
      continue;
    }
    // Categories, then the missing-value tokens (none of which is a category).
    std::vector<std::string> cats = column.categories;
    for (const std::string& token : encoding.missing_values())
      if (!std::binary_search(column.categories.begin(), column.categories.end(), token) &&
          std::find(cats.begin(), cats.end(), token) == cats.end())
        cats.push_back(token);
    onnx::NodeProto& one_hot = g.add("OneHotEncoder", {column.name}, prefix + "/one_hot");
    one_hot.set_domain("ai.onnx.ml");
    set_attribute(one_hot, "cats_strings", cats);
    set_attribute(one_hot, "zeros", std::int64_t{encoding.unknown_category() == "ignore" ? 1 : 0});
    // onnx 1.12 infers no type for OneHotEncoder's output; say it: float [N, 1, categories].
    onnx::ValueInfoProto& one_hot_info = *graph.add_value_info();
    one_hot_info.set_name(prefix + "/one_hot");
    onnx::TypeProto_Tensor* one_hot_type = one_hot_info.mutable_type()->mutable_tensor_type();
    one_hot_type->set_elem_type(onnx::TensorProto::FLOAT);
    one_hot_type->mutable_shape()->add_dim()->set_dim_param("N");
    one_hot_type->mutable_shape()->add_dim()->set_dim_value(1);
    one_hot_type->mutable_shape()->add_dim()->set_dim_value(static_cast<std::int64_t>(cats.size()));
    set_attribute(g.add("Flatten", {prefix + "/one_hot"}, prefix + "/flat"), "axis",
                  std::int64_t{1});
    const auto k = static_cast<std::int64_t>(column.categories.size());
    const std::int64_t width = column.width();
    std::vector<double> map(cats.size() * static_cast<std::size_t>(width), 0.0);
    for (std::int64_t i = 0; i < k; ++i) map[static_cast<std::size_t>(i * width + i)] = 1;
    // A constant fill that training never needed is no category: a missing cell is unknown.
    const auto fill =
        std::lower_bound(column.categories.begin(), column.categories.end(), column.fill_category);
    const bool imputed =
        column.impute != "none" && fill != column.categories.end() && *fill == column.fill_category;
    for (std::size_t row = static_cast<std::size_t>(k); row < cats.size(); ++row) {
      if (imputed)
        map[row * static_cast<std::size_t>(width) + (fill - column.categories.begin())] = 1;
      if (column.indicator) map[row * static_cast<std::size_t>(width) + k] = 1;
    }
    const auto rows = static_cast<std::int64_t>(cats.size());
    g.initializer(prefix + "/map", Tensor::from_vector(map, {rows, width}), {rows, width});
    g.add("MatMul", {prefix + "/flat", prefix + "/map"}, prefix + "/encoded");
    parts.push_back(prefix + "/encoded");
  }
  set_attribute(g.add("Concat", parts, "encoded"), "axis", std::int64_t{1});
  return {"encoded", {encoding.width()}};
}

OnnxModel build_onnx_model(const Predictor& predictor) {
  const bool classification = predictor.kind() == PredictionKind::Classification;
  const BundleInfo& info = predictor.info();
  onnx::ModelProto model;
  start_model(model);
  const TableEncoding* encoding = predictor.encoding();
  const bool columns = encoding && !encoding->identity();
  if (columns) {
    onnx::OperatorSetIdProto* ml = model.add_opset_import();
    ml->set_domain("ai.onnx.ml");
    ml->set_version(kOnnxMlOpsetVersion);
  }
  model.set_doc_string(
      classification
          ? "A lathe classifier. Input 'input': raw float32 values [N, ...input_shape], as the "
            "training data was read (preprocessing is part of the graph). Outputs "
            "'probabilities' (softmax) and 'logits', [N, classes]; class names in metadata "
            "'lathe.classes'."
          : "A lathe regression model. Input 'input': raw float32 values [N, ...input_shape], as "
            "the training data was read (preprocessing is part of the graph). Output 'output' "
            "[N, outputs].");

  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name(classification ? "lathe_classifier" : "lathe_regression");
  GraphBuilder builder(graph);

  OnnxModel result;
  Value raw{"input", predictor.input_shape()};
  if (columns) {
    raw = add_table_encoding(builder, graph, *encoding, result.inputs);
    model.set_doc_string(model.doc_string() +
                         " This model was trained on a table: it takes one input per column, "
                         "[N, 1], float32 (NaN for a missing value) or string, encoded in the "
                         "graph as lathe encodes them.");
  } else {
    result.inputs.push_back(batched("input", predictor.input_shape()));
    set_tensor_type(*graph.add_input(), result.inputs.front());
  }
  result.input = result.inputs.front();

  const std::map<std::string, Tensor> state = predictor.model().state_dict();
  std::set<std::string> used;
  Value x = add_preprocessing(builder, info.preprocessing, raw);
  x = export_layer(builder, predictor.model().spec(), "", state, used, x);
  for (const auto& [name, tensor] : state)
    if (!used.count(name))
      throw Error(fmt::format("export: tensor '{}' is not used by its layer's ONNX form", name));

  if (classification) {
    builder.name_output(x.name, "logits");
    set_attribute(builder.add("Softmax", {"logits"}, "probabilities"), "axis", std::int64_t{-1});
    result.outputs = {batched("probabilities", x.shape), batched("logits", x.shape)};
    add_metadata(model, "lathe.classes", json(predictor.class_names()).dump());
  } else {
    builder.name_output(x.name, "output");
    result.outputs = {batched("output", x.shape)};
  }
  for (const OnnxTensorInfo& output : result.outputs) set_tensor_type(*graph.add_output(), output);

  add_metadata(model, "lathe.version", version());
  add_metadata(model, "lathe.task", info.task.dump());
  add_metadata(model, "lathe.preprocessing", info.preprocessing.to_json().dump());
  add_metadata(model, "lathe.architecture", predictor.model().spec().dump());
  add_metadata(model, "lathe.metrics", info.metrics.dump());

  finish_model(model, result);
  return result;
}

OnnxModel build_onnx_model(const LoadedBundle& bundle) {
  if (is_language_model(bundle.info)) return onnx_export::build_gpt_onnx_model(bundle);
  return build_onnx_model(Predictor(bundle));
}

OnnxModel export_onnx(const Predictor& predictor, const std::filesystem::path& path) {
  OnnxModel model = build_onnx_model(predictor);
  write_file_atomically(path, model.bytes);
  return model;
}

OnnxModel export_onnx(const LoadedBundle& bundle, const std::filesystem::path& path) {
  OnnxModel model = build_onnx_model(bundle);
  write_file_atomically(path, model.bytes);
  return model;
}

}  // namespace lathe
