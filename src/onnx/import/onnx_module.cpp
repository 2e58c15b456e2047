// An imported ONNX graph as a lathe module (the registered layer type "onnx_graph"), so that a
// bundle, predict, eval, serve, inspect and the trainer take it like any other model; and
// import_onnx, which makes the bundle a `lathe import` writes.
//
// The module's spec() holds the graph as protobuf text (google::protobuf::TextFormat) with the
// floating initializers' values left out: those are the module's parameters, saved as the
// bundle's tensors and trained like any weights. Integer initializers (shapes, axes) stay in the
// text.
#include <google/protobuf/text_format.h>
#include <onnx/onnx_pb.h>

#include <mutex>

#include "lathe/autograd.h"
#include "lathe/onnx_import.h"
#include "src/io/file_bytes.h"
#include "src/onnx/import/graph.h"
#include "src/onnx/import/lowering.h"
#include "src/onnx/import/tensor_proto.h"

namespace lathe {
namespace {

using nlohmann::json;
constexpr const char* kLayerType = "onnx_graph";

// The initializers held in float32 tensors: the module's parameters (float64 ones stay in the
// graph text, like the integer ones).
bool is_float_initializer(const onnx::TensorProto& t) {
  switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
    case onnx::TensorProto::FLOAT16:
    case onnx::TensorProto::BFLOAT16:
      return true;
    default:
      return false;
  }
}

// The model of an .onnx file, with any external data (confined to the file's folder, as
// OnnxGraph checks it) read into its initializers: a bundle keeps no reference to other files.
onnx::ModelProto read_model_file(const std::filesystem::path& path) {
  const auto raw = detail::read_raw_file(path, OnnxLimits{}.max_model_bytes);
  onnx::ModelProto model;
  if (!model.ParseFromArray(raw.data(), static_cast<int>(raw.size())))
    throw Error(fmt::format("{}: not a valid ONNX model (the protobuf ModelProto does not parse)",
                            path.string()));
  const std::filesystem::path folder = path.parent_path().empty() ? "." : path.parent_path();
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto::EXTERNAL) continue;
    const OnnxValue value = onnx_detail::tensor_from_proto(
        t, folder, OnnxLimits{}, fmt::format("initializer '{}'", t.name()));
    const std::string name = t.name();
    t.Clear();
    onnx_detail::tensor_to_proto(value, t);
    t.set_name(name);
  }
  return model;
}

// The graph text of a spec: the floating initializers keep their name, type and dims only.
std::string graph_text(onnx::ModelProto model) {
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (!is_float_initializer(t)) continue;
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_int32_data();
    t.clear_external_data();
    t.clear_data_location();
  }
  std::string text;
  google::protobuf::TextFormat::PrintToString(model, &text);
  return text;
}

onnx::ModelProto parse_graph_text(const std::string& text) {
  onnx::ModelProto model;
  google::protobuf::TextFormat::Parser parser;
  parser.SetRecursionLimit(64);
  if (!parser.ParseFromString(text, &model))
    throw LayerSpecError("graph", "onnx_graph: 'graph' is not an ONNX ModelProto in text format");
  return model;
}

// The model a spec describes: read from `file`, or the `graph` text, where `fill` gives the
// floating initializers zeros (their values come from the bundle's tensors). A bundle reader asks
// for the shapes first (fill false), so nothing is allocated before they are checked against the
// file's tensors.
onnx::ModelProto spec_model(const json& args, std::string* folder, bool fill = true) {
  if (args.contains("file") && args["file"].is_string()) {
    const std::filesystem::path path = args["file"].get<std::string>();
    if (folder) *folder = path.parent_path().empty() ? "." : path.parent_path().string();
    return read_model_file(path);
  }
  if (!args.contains("graph") || !args["graph"].is_string())
    throw LayerSpecError("file", "onnx_graph needs 'file' (an .onnx file) or 'graph'");
  onnx::ModelProto model = parse_graph_text(args["graph"].get<std::string>());
  if (!fill) return model;
  for (auto& t : *model.mutable_graph()->mutable_initializer()) {
    if (!is_float_initializer(t) || t.has_raw_data() || t.float_data_size() || t.int32_data_size())
      continue;
    const auto size = onnx_detail::onnx_type_size(static_cast<OnnxType>(t.data_type()));
    const std::int64_t count = onnx_detail::checked_element_count(
        t.dims(), size, OnnxLimits{}.max_tensor_bytes, fmt::format("initializer '{}'", t.name()));
    t.set_raw_data(std::string(static_cast<std::size_t>(count) * size, '\0'));
  }
  return model;
}

class OnnxGraphModule : public Module {
 public:
  OnnxGraphModule(const onnx::ModelProto& model, const std::string& folder, std::string input,
                  std::string output)
      : text_(graph_text(model)),
        graph_(OnnxGraph::parse(model.SerializeAsString(), folder)),
        input_(std::move(input)),
        output_(std::move(output)) {
    if (graph_.inputs().empty())
      throw LayerSpecError("input", "onnx_graph: the graph has no inputs");
    if (graph_.outputs().empty())
      throw LayerSpecError("output", "onnx_graph: the graph has no outputs");
    if (input_.empty()) input_ = graph_.inputs()[0].name;
    if (output_.empty()) output_ = graph_.outputs()[0].name;
    const OnnxGraphIO* in = nullptr;
    for (const auto& io : graph_.inputs()) in = io.name == input_ ? &io : in;
    if (!in) throw LayerSpecError("input", fmt::format("onnx_graph: no graph input '{}'", input_));
    if (graph_.inputs().size() > 1)
      throw LayerSpecError("input", fmt::format("onnx_graph: the graph has {} inputs; a lathe "
                                                "model takes one (run it with lathe run)",
                                                graph_.inputs().size()));
    if (in->type != OnnxType::Float)
      throw LayerSpecError("input", fmt::format("onnx_graph: input {} is not float32; a lathe "
                                                "model takes float32 features (run it with lathe "
                                                "run)",
                                                in->describe()));
    if (!in->dims.empty() && !in->dims[0].empty() &&
        std::isdigit(static_cast<unsigned char>(in->dims[0][0])))
      fixed_batch_ = std::stoll(in->dims[0]);
    for (std::size_t k = 1; k < in->dims.size(); ++k) {
      const std::string& d = in->dims[k];
      example_.push_back(
          !d.empty() && std::isdigit(static_cast<unsigned char>(d[0])) ? std::stoll(d) : -1);
    }
    output_index_ = graph_.outputs().size();
    for (std::size_t k = 0; k < graph_.outputs().size(); ++k)
      if (graph_.outputs()[k].name == output_) output_index_ = k;
    if (output_index_ == graph_.outputs().size())
      throw LayerSpecError("output", fmt::format("onnx_graph: no graph output '{}'", output_));
    for (const NamedTensor& p : graph_.parameters())
      if (p.tensor.dtype() == DType::Float32) register_parameter(p.name, p.tensor);
  }

  Tensor forward(const Tensor& input) override {
    if (fixed_batch_ > 0 && input.dim() > 0 && input.size(0) != fixed_batch_) {
      // The graph was exported for batches of exactly fixed_batch_ rows: run it on each group,
      // the last one filled up with rows of zeros whose answers are dropped.
      const std::int64_t rows = input.size(0);
      std::vector<Tensor> parts;
      for (std::int64_t start = 0; start < rows; start += fixed_batch_) {
        const std::int64_t end = std::min(rows, start + fixed_batch_);
        Tensor group = slice(input, 0, start, end);
        if (end - start < fixed_batch_) {
          Shape filler = input.shape();
          filler[0] = fixed_batch_ - (end - start);
          group = concat({group, Tensor::zeros(filler, input.dtype())}, 0);
          parts.push_back(slice(run(group), 0, 0, end - start));
        } else {
          parts.push_back(run(group));
        }
      }
      return parts.size() == 1 ? parts[0] : concat(parts, 0);
    }
    return run(input);
  }

  // The graph input the module feeds.
  const OnnxGraphIO& input() const {
    for (const auto& io : graph_.inputs())
      if (io.name == input_) return io;
    throw Error("onnx_graph: internal error: no input '" + input_ + "'");
  }

  std::string type() const override { return kLayerType; }
  json spec() const override {
    return {{"type", kLayerType}, {"graph", text_}, {"input", input_}, {"output", output_}};
  }

 private:
  Tensor run(const Tensor& input) const {
    Tensor x = input.dtype() == DType::Float32 ? input : input.to(DType::Float32);
    // Examples of the graph's size in another layout (28x28 images for a graph of 784 inputs)
    // are laid out as the graph declares them, as lathe predict lays out any input.
    const bool known =
        !example_.empty() && std::find(example_.begin(), example_.end(), -1) == example_.end();
    if (known && x.dim() > 0 && x.numel() == x.size(0) * shape_numel(example_)) {
      Shape shape{x.size(0)};
      shape.insert(shape.end(), example_.begin(), example_.end());
      if (shape != x.shape()) x = reshape(x, shape);
    }
    OnnxValue out = graph_.run({{input_, {x, OnnxType::Float}}}).at(output_index_);
    if (out.tensor.dtype() != DType::Float32) out.tensor = out.tensor.to(DType::Float32);
    return out.tensor;
  }

  std::string text_;
  OnnxGraph graph_;
  std::string input_, output_;
  std::size_t output_index_ = 0;
  std::int64_t fixed_batch_ = 0;
  Shape example_;  // the declared input dims after the batch's, -1 where symbolic
};

std::string model_output(onnx::ModelProto& model, std::string wanted, bool classifier);

std::shared_ptr<Module> make_onnx_module(const json& args, Generator&) {
  std::string folder;
  onnx::ModelProto model = spec_model(args, &folder);
  std::string output = args.value("output", "");
  // A model built from a file (a config) returns logits rather than a Softmax's probabilities;
  // a bundle's graph was settled by its import.
  if (args.contains("file")) output = model_output(model, output, true);
  return std::make_shared<OnnxGraphModule>(model, folder, args.value("input", ""), output);
}

std::map<std::string, Shape> onnx_tensor_shapes(const json& args) {
  std::map<std::string, Shape> shapes;
  const onnx::ModelProto model = spec_model(args, nullptr, false);
  for (const auto& t : model.graph().initializer())
    if (is_float_initializer(t)) shapes[t.name()] = Shape(t.dims().begin(), t.dims().end());
  return shapes;
}

// The graph value a lathe model returns: `wanted` (default: the first graph output), which may
// also be any node's output (made a graph output here). For a classifier, an output that a
// Softmax or LogSoftmax computes is replaced by that node's input, the logits: lathe's
// cross-entropy and predictor apply the softmax themselves.
std::string model_output(onnx::ModelProto& model, std::string wanted, bool classifier) {
  auto& outputs = *model.mutable_graph()->mutable_output();
  if (wanted.empty() && !outputs.empty()) wanted = outputs[0].name();
  auto make_output = [&](const std::string& replaced, const std::string& name) {
    onnx::ValueInfoProto* info = nullptr;
    for (auto& out : outputs)
      if (out.name() == replaced) info = &out;
    if (!info) info = model.mutable_graph()->add_output();
    info->Clear();
    info->set_name(name);
    info->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  };
  bool produced = false;
  for (const auto& node : model.graph().node())
    for (const auto& out : node.output()) produced = produced || out == wanted;
  bool is_output = false;
  for (const auto& out : outputs) is_output = is_output || out.name() == wanted;
  if (produced && !is_output) make_output("", wanted);
  if (!classifier) return wanted;
  for (const auto& node : model.graph().node())
    if ((node.op_type() == "Softmax" || node.op_type() == "LogSoftmax") &&
        node.output_size() == 1 && node.output(0) == wanted) {
      const std::string logits = node.input(0);
      make_output(wanted, logits);
      return logits;
    }
  return wanted;
}

// The class names a model exported by lathe keeps in its metadata ("lathe.classes", a JSON
// array of strings); none for any other model.
std::vector<std::string> exported_class_names(const onnx::ModelProto& model) {
  for (const auto& entry : model.metadata_props()) {
    if (entry.key() != "lathe.classes") continue;
    const json names = json::parse(entry.value(), nullptr, false);
    std::vector<std::string> classes;
    if (!names.is_array()) return {};
    for (const json& name : names) {
      if (!name.is_string()) return {};
      classes.push_back(name.get<std::string>());
    }
    return classes;
  }
  return {};
}

// Replaces the bundle's graph by lathe's own layers (lowering.h) when the graph is a chain they
// express and they give its outputs on a random probe (within 1e-4 of the largest output);
// otherwise says why not.
bool lower_bundle(const onnx::ModelProto& model, const std::string& input,
                  const std::string& output, const Shape& example, LoadedBundle& bundle,
                  std::string& why) {
  const Preprocessing& given = bundle.info.preprocessing;
  const bool identity = given.scale() == 1 && given.mean() == std::vector<double>{0.0} &&
                        given.std() == std::vector<double>{1.0};
  const auto lowered =
      onnx_detail::lower_to_layers(model, input, output, identity, example.size() == 1, why);
  if (!lowered) return false;
  Generator generator(0);
  std::shared_ptr<Module> layers;
  try {
    layers = make_layer(lowered->spec, generator);
    layers->load_state_dict(lowered->state);
  } catch (const std::exception& e) {
    why = e.what();
    return false;
  }
  layers->eval();
  const Preprocessing preprocessing = identity ? lowered->preprocessing : given;
  Shape probe_shape{2};
  probe_shape.insert(probe_shape.end(), example.begin(), example.end());
  NoGradGuard no_grad;
  const Tensor x = Tensor::randn(probe_shape, generator) * 10.0;
  const Tensor expected = bundle.model->forward(given.apply(x));
  const Tensor got = layers->forward(preprocessing.apply(x));
  double worst = 0, largest = 0;
  const auto e = expected.to_vector(), g = got.to_vector();
  if (e.size() != g.size()) {
    why = "the layers give another output shape than the graph";
    return false;
  }
  for (std::size_t k = 0; k < e.size(); ++k) {
    worst = std::max(worst, std::abs(e[k] - g[k]));
    largest = std::max(largest, std::abs(e[k]));
  }
  if (!(worst <= 1e-4 * (1 + largest))) {
    why = fmt::format("the layers differ from the graph by {:.3g}", worst);
    return false;
  }
  bundle.model = layers;
  bundle.info.architecture = layers->spec();
  bundle.info.preprocessing = preprocessing;
  bundle.info.metrics["lowered_to_layers"] = true;
  return true;
}

}  // namespace

void register_onnx_import() {
  static std::once_flag once;
  std::call_once(once, [] {
    LayerType type;
    type.name = kLayerType;
    type.help =
        "A model imported from ONNX (lathe import, or [model] file = \"model.onnx\"): the graph "
        "runs on lathe's ops and its floating initializers are the trainable parameters";
    type.arguments = {
        {"file", LayerArgument::Kind::Path, false, nullptr,
         "an .onnx file to build the model from (its weights are the starting point; a config "
         "reads a relative path from the config's folder)"},
        {"graph", LayerArgument::Kind::String, false, nullptr,
         "the ONNX graph in protobuf text format, without the floating weights (what a bundle "
         "holds)"},
        {"input", LayerArgument::Kind::String, false, "", "the graph input (default: the first)"},
        {"output", LayerArgument::Kind::String, false, "",
         "the graph output the model returns (default: the first)"}};
    type.make = make_onnx_module;
    type.check = [](const json& args) {
      const bool file = args.contains("file") && args["file"].is_string();
      const bool graph = args.contains("graph") && args["graph"].is_string();
      if (file == graph)
        throw LayerSpecError("file", "onnx_graph needs exactly one of 'file' and 'graph'");
    };
    type.tensor_shapes = onnx_tensor_shapes;
    type.example = {{"type", kLayerType},
                    {"graph",
                     "ir_version: 8 opset_import { version: 17 } graph { node { input: \"x\" "
                     "output: \"y\" op_type: \"Relu\" } input { name: \"x\" type { "
                     "tensor_type { elem_type: 1 shape { dim { dim_param: \"N\" } dim { "
                     "dim_value: 4 } } } } } output { name: \"y\" type { tensor_type { "
                     "elem_type: 1 } } } }"}};
    register_layer_type(std::move(type));
    register_model_file_reader(".onnx",
                               [](const std::filesystem::path& path) { return import_onnx(path); });
  });
}

LoadedBundle import_onnx(const std::filesystem::path& path, const OnnxImportOptions& options) {
  register_onnx_import();
  try {
    onnx::ModelProto model = read_model_file(path);
    const std::string folder = path.parent_path().empty() ? "." : path.parent_path().string();
    const std::string output = model_output(model, options.output, options.task != "regression");
    auto module = std::make_shared<OnnxGraphModule>(model, folder, options.input, output);
    module->eval();
    const OnnxGraphIO& input = module->input();
    Shape example;
    for (std::size_t k = 1; k < input.dims.size(); ++k) {
      const std::string& d = input.dims[k];
      if (d.empty() || !std::isdigit(static_cast<unsigned char>(d[0])))
        throw Error(
            fmt::format("input {}: dimension {} is '{}'; lathe import needs every "
                        "dimension but the batch's to be a number",
                        input.describe(), k, d));
      example.push_back(std::stoll(d));
    }
    if (input.dims.empty())
      throw Error(fmt::format("input {} declares no shape; lathe import needs [batch, ...]",
                              input.describe()));
    Shape probe_shape{1};
    probe_shape.insert(probe_shape.end(), example.begin(), example.end());
    Tensor probe;
    {
      NoGradGuard no_grad;
      probe = module->forward(Tensor::zeros(probe_shape));
    }
    if (probe.dim() != 2)
      throw Error(
          fmt::format("output '{}' has shape {} for one example; lathe import takes a "
                      "model whose output is [batch, outputs]",
                      output, shape_str(probe.shape())));
    const std::int64_t outputs = probe.size(1);
    std::string task = options.task;
    if (task == "auto") task = outputs > 1 ? "classification" : "regression";
    if (task != "classification" && task != "regression")
      throw Error(fmt::format("task '{}': expected classification, regression or auto", task));
    json task_json = {{"task", task}, {"input_shape", example}};
    if (task == "classification") {
      std::vector<std::string> classes = options.classes;
      if (classes.empty()) classes = exported_class_names(model);
      if (classes.empty())
        for (std::int64_t c = 0; c < outputs; ++c) classes.push_back(std::to_string(c));
      if (static_cast<std::int64_t>(classes.size()) != outputs)
        throw Error(
            fmt::format("{} class names given, the model has {} outputs", classes.size(), outputs));
      task_json["classes"] = classes;
    }
    BundleInfo info{module->spec(),
                    options.preprocessing,
                    task_json,
                    {{"imported_from", path.filename().string()}, {"output", output}}};
    LoadedBundle bundle{module, info};
    if (!options.keep_graph) {
      std::string why;
      if (lower_bundle(model, input.name, output, example, bundle, why)) return bundle;
      bundle.info.metrics["graph_kept_because"] = why;
    }
    return bundle;
  } catch (const OnnxUnsupported& e) {
    const std::string message = e.what();
    if (message.rfind(path.string(), 0) == 0) throw;
    throw OnnxUnsupported(fmt::format("{}: {}", path.string(), message));
  } catch (const LayerSpecError& e) {
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(path.string(), 0) == 0) throw;
    throw Error(fmt::format("{}: {}", path.string(), message));
  }
}

}  // namespace lathe
