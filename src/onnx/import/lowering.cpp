// Lowering an imported graph to lathe's own layers. A graph that is one chain of nodes lathe's
// layer types express (lathe's own exports; PyTorch's exports of MLPs and CNNs) becomes a
// Sequential of those layers, with its leading scale/shift as the bundle's preprocessing, so it
// predicts through the same inference plan, trains at the same speed and quantizes to int8 like
// a model lathe trained. import_onnx keeps the lowered model only if it gives the graph's own
// outputs on a random probe; anything else stays an onnx_graph.
#include <onnx/onnx_pb.h>

#include <deque>

#include "src/onnx/import/graph.h"
#include "src/onnx/import/lowering.h"
#include "src/onnx/import/tensor_proto.h"

namespace lathe::onnx_detail {
namespace {

using nlohmann::json;

class Lowering {
 public:
  Lowering(const onnx::ModelProto& model, bool may_take_preprocessing, bool flat_input)
      : graph_(model.graph()), may_take_preprocessing_(may_take_preprocessing), flat_(flat_input) {
    for (const auto& t : graph_.initializer()) initializers_[t.name()] = &t;
    // PyTorch writes the scalars of `x * (1 / 255)` and the pads of a Pad as Constant nodes.
    for (const auto& node : graph_.node()) {
      if (node.op_type() != "Constant" || node.output_size() != 1) continue;
      for (const auto& a : node.attribute()) {
        if (a.name() == "value" && a.has_t()) {
          initializers_[node.output(0)] = &a.t();
        } else if (a.name() == "value_float" || a.name() == "value_int") {
          onnx::TensorProto& t = constants_.emplace_back();
          if (a.name() == "value_float") {
            t.set_data_type(onnx::TensorProto::FLOAT);
            t.add_float_data(a.f());
          } else {
            t.set_data_type(onnx::TensorProto::INT64);
            t.add_int64_data(a.i());
          }
          initializers_[node.output(0)] = &t;
        }
      }
    }
  }

  // The chain from `input` to `output`, as layers; nullopt with `why` set where it is not one.
  std::optional<LoweredModel> run(const std::string& input, const std::string& output,
                                  std::string& why) {
    std::string value = input;
    try {
      while (value != output) value = lower(*only_consumer(value));
    } catch (const NotLowerable& e) {
      why = e.what();
      return std::nullopt;
    }
    if (layers_.empty()) {
      why = "no layers";
      return std::nullopt;
    }
    return LoweredModel{{{"type", "sequential"}, {"layers", layers_}}, state_, preprocessing_};
  }

 private:
  struct NotLowerable : std::runtime_error {
    using std::runtime_error::runtime_error;
  };
  [[noreturn]] static void refuse(const std::string& why) { throw NotLowerable(why); }

  const onnx::NodeProto* only_consumer(const std::string& value) {
    const onnx::NodeProto* found = nullptr;
    for (const auto& node : graph_.node())
      for (const auto& in : node.input())
        if (in == value) {
          if (found && found != &node)
            refuse(
                fmt::format("'{}' feeds two nodes (a branch or a residual connection), which "
                            "a chain of lathe layers does not express",
                            value));
          found = &node;
        }
    if (!found) refuse(fmt::format("nothing consumes '{}'", value));
    if (found->output_size() < 1) refuse("a node without outputs");
    for (int k = 0; k < found->input_size(); ++k) {
      const std::string& in = found->input(k);
      if (in == value) {
        // Every layer takes the chain's value first; an Add of a bias may take it either side.
        if (k != 0 && found->op_type() != "Add")
          refuse(fmt::format("node '{}' ({}) takes the data as input {}, not first", found->name(),
                             found->op_type(), k));
      } else if (!in.empty() && !initializers_.count(in)) {
        refuse(fmt::format(
            "node '{}' ({}) also takes '{}', which the graph computes rather than holds as a "
            "constant (a branch, a residual connection or a computed shape): a chain of lathe "
            "layers does not express that",
            found->name(), found->op_type(), in));
      }
    }
    return found;
  }

  Tensor initializer(const std::string& name) {
    const onnx::TensorProto* t = initializers_.at(name);
    const OnnxValue v = tensor_from_proto(*t, {}, OnnxLimits{}, name);
    if (v.type != OnnxType::Float && v.type != OnnxType::Int64)
      refuse(fmt::format("initializer '{}' is {}", name, onnx_type_name(v.type)));
    return v.tensor;
  }

  static std::int64_t int_attr(const onnx::NodeProto& node, const std::string& name,
                               std::int64_t fallback) {
    for (const auto& a : node.attribute())
      if (a.name() == name) return a.i();
    return fallback;
  }
  static double float_attr(const onnx::NodeProto& node, const std::string& name, double fallback) {
    for (const auto& a : node.attribute())
      if (a.name() == name) return a.f();
    return fallback;
  }
  static std::vector<std::int64_t> ints_attr(const onnx::NodeProto& node, const std::string& name) {
    for (const auto& a : node.attribute())
      if (a.name() == name) return {a.ints().begin(), a.ints().end()};
    return {};
  }
  static std::string string_attr(const onnx::NodeProto& node, const std::string& name) {
    for (const auto& a : node.attribute())
      if (a.name() == name) return a.s();
    return "";
  }

  // One value of a square window attribute ([k, k] -> k), or `fallback` when absent.
  static std::int64_t square(const onnx::NodeProto& node, const std::string& name,
                             std::int64_t fallback) {
    const auto v = ints_attr(node, name);
    if (v.empty()) return fallback;
    for (std::int64_t x : v)
      if (x != v[0])
        refuse(fmt::format("{} {} is not the same on every side", node.op_type(), name));
    return v[0];
  }

  void layer(json spec, std::map<std::string, Tensor> tensors = {}) {
    const std::string type = spec["type"];
    if (type == "flatten" || type == "linear" || type == "global_avg_pool") flat_ = true;
    if (type == "conv2d") flat_ = false;
    if (type == "reshape") flat_ = spec["shape"].size() == 1;
    const std::string index = std::to_string(layers_.size());
    for (auto& [name, t] : tensors) state_[index + "." + name] = t;
    layers_.push_back(std::move(spec));
  }

  double scalar(const std::string& name) {
    const Tensor t = initializer(name);
    if (t.numel() != 1 || t.dtype() == DType::Int64)
      refuse(fmt::format("'{}' is not a scalar", name));
    return t.to_vector()[0];
  }

  // Returns the node's output; adds what it computes to the layers (or the preprocessing).
  std::string lower(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    const std::string out = node.output(0);
    if (node.domain() != "" && node.domain() != "ai.onnx") refuse("domain " + node.domain());
    // Leading multiplies, subtractions and divisions by scalars: the bundle's preprocessing. In
    // the order (x * scale - mean) / std it keeps those numbers; any other order is the one
    // affine map a x + b they make.
    if (may_take_preprocessing_ && layers_.empty() && (op == "Mul" || op == "Sub" || op == "Div")) {
      const double c = scalar(node.input(1));
      if (op == "Div" && c == 0) refuse("a division by zero in the preprocessing");
      const int stage = op == "Mul" ? 1 : op == "Sub" ? 2 : 3;
      in_order_ = in_order_ && stage > stage_ && (op != "Div" || c > 0);
      stage_ = stage;
      if (op == "Mul") scale_ = c, slope_ *= c, offset_ *= c;
      if (op == "Sub") mean_ = c, offset_ -= c;
      if (op == "Div") std_ = c, slope_ /= c, offset_ /= c;
      preprocessing_ = in_order_ ? Preprocessing::normalize(scale_, mean_, std_)
                                 : Preprocessing::normalize(slope_, -offset_, 1);
      return out;
    }
    if (op == "Identity" || op == "Dropout") return out;
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh") {
      std::string type = op;
      for (char& ch : type) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      layer({{"type", type}});
      return out;
    }
    if (op == "LeakyRelu") {
      layer({{"type", "leaky_relu"}, {"negative_slope", float_attr(node, "alpha", 0.01)}});
      return out;
    }
    if (op == "Flatten") {
      if (int_attr(node, "axis", 1) != 1) refuse("Flatten with axis other than 1");
      layer({{"type", "flatten"}});
      return out;
    }
    if (op == "Reshape") {
      const Tensor shape = initializer(node.input(1));
      std::vector<std::int64_t> dims;
      for (double d : shape.to_vector()) dims.push_back(static_cast<std::int64_t>(d));
      if (dims.empty() || (dims[0] != -1 && dims[0] != 0)) refuse("Reshape of the batch axis");
      dims.erase(dims.begin());
      for (std::int64_t d : dims)
        if (d <= 0) refuse("Reshape with a derived dimension");
      layer({{"type", "reshape"}, {"shape", dims}});
      return out;
    }
    if (op == "Gemm") return lower_gemm(node);
    if (op == "MatMul") return lower_matmul(node);
    if (op == "Conv") return lower_conv(node);
    if (op == "MaxPool" || op == "AveragePool") return lower_pool(node);
    if (op == "BatchNormalization") return lower_batch_norm(node);
    if (op == "GlobalAveragePool") {
      // lathe's global_avg_pool gives [N, C]; ONNX's [N, C, 1, 1], which a Flatten follows.
      const onnx::NodeProto* next = only_consumer(out);
      if (next->op_type() != "Flatten" || int_attr(*next, "axis", 1) != 1)
        refuse("GlobalAveragePool without a Flatten after it");
      layer({{"type", "global_avg_pool"}});
      return next->output(0);
    }
    refuse(fmt::format("operator {} has no lathe layer", op));
  }

  std::string lower_gemm(const onnx::NodeProto& node) {
    if (float_attr(node, "alpha", 1) != 1 || float_attr(node, "beta", 1) != 1 ||
        int_attr(node, "transA", 0) != 0)
      refuse("Gemm with alpha, beta or transA");
    Tensor w = initializer(node.input(1));
    if (w.dim() != 2) refuse("Gemm weight of rank other than 2");
    if (int_attr(node, "transB", 0) == 0) w = transpose(w, 0, 1).clone();
    std::map<std::string, Tensor> tensors{{"weight", w}};
    const bool bias = node.input_size() > 2 && !node.input(2).empty();
    if (bias) {
      const Tensor b = initializer(node.input(2));
      if (b.dim() != 1 || b.size(0) != w.size(0)) refuse("Gemm bias not one per output");
      tensors["bias"] = b;
    }
    layer({{"type", "linear"}, {"in", w.size(1)}, {"out", w.size(0)}, {"bias", bias}}, tensors);
    return node.output(0);
  }

  // MatMul by a weight [in, out], with the Add of a bias [out] that usually follows.
  std::string lower_matmul(const onnx::NodeProto& node) {
    const Tensor w = initializer(node.input(1));
    if (w.dim() != 2) refuse("MatMul weight of rank other than 2");
    std::map<std::string, Tensor> tensors{{"weight", transpose(w, 0, 1).clone()}};
    std::string out = node.output(0);
    bool bias = false;
    for (const auto& next : graph_.node())
      if (next.op_type() == "Add" && next.input_size() == 2 &&
          (next.input(0) == out || next.input(1) == out)) {
        // PyTorch writes nn.Linear's bias add either way round: Add(bias, x W) or Add(x W, bias).
        const std::string& other = next.input(next.input(0) == out ? 1 : 0);
        if (!initializers_.count(other)) break;
        const Tensor b = initializer(other);
        if (b.dim() != 1 || b.size(0) != w.size(1)) break;
        only_consumer(out);  // the Add is its one consumer
        tensors["bias"] = b;
        bias = true;
        out = next.output(0);
        break;
      }
    layer({{"type", "linear"}, {"in", w.size(0)}, {"out", w.size(1)}, {"bias", bias}}, tensors);
    return out;
  }

  static void require_plain_padding(const onnx::NodeProto& node) {
    const std::string pad = string_attr(node, "auto_pad");
    if (!pad.empty() && pad != "NOTSET" && pad != "VALID")
      refuse(fmt::format("{} auto_pad {}", node.op_type(), pad));
  }

  std::string lower_conv(const onnx::NodeProto& node) {
    require_plain_padding(node);
    const Tensor w = initializer(node.input(1));
    if (w.dim() != 4 || w.size(2) != w.size(3)) refuse("Conv other than 2-D with a square kernel");
    const std::int64_t groups = int_attr(node, "group", 1);
    std::map<std::string, Tensor> tensors{{"weight", w}};
    const bool bias = node.input_size() > 2 && !node.input(2).empty();
    if (bias) tensors["bias"] = initializer(node.input(2));
    layer({{"type", "conv2d"},
           {"in", w.size(1) * groups},
           {"out", w.size(0)},
           {"kernel_size", w.size(2)},
           {"stride", square(node, "strides", 1)},
           {"padding", square(node, "pads", 0)},
           {"dilation", square(node, "dilations", 1)},
           {"groups", groups},
           {"bias", bias}},
          tensors);
    return node.output(0);
  }

  std::string lower_pool(const onnx::NodeProto& node) {
    require_plain_padding(node);
    if (node.output_size() > 1) refuse("MaxPool with Indices");
    if (int_attr(node, "ceil_mode", 0) != 0 || square(node, "dilations", 1) != 1)
      refuse(fmt::format("{} with ceil_mode or dilations", node.op_type()));
    const std::int64_t kernel = square(node, "kernel_shape", 0);
    const std::int64_t padding = square(node, "pads", 0);
    const bool average = node.op_type() == "AveragePool";
    // lathe's avg_pool2d counts padding as zeros: ONNX's count_include_pad = 1.
    if (average && padding > 0 && int_attr(node, "count_include_pad", 0) == 0)
      refuse("AveragePool that leaves padding out of the count");
    if (ints_attr(node, "kernel_shape").size() != 2) refuse("pooling other than 2-D");
    layer({{"type", average ? "avg_pool2d" : "max_pool2d"},
           {"kernel_size", kernel},
           {"stride", square(node, "strides", 1)},
           {"padding", padding}});
    return node.output(0);
  }

  std::string lower_batch_norm(const onnx::NodeProto& node) {
    if (int_attr(node, "training_mode", 0) != 0 || node.input_size() != 5)
      refuse("BatchNormalization in training mode");
    const Tensor weight = initializer(node.input(1));
    layer({{"type", flat_ ? "batch_norm1d" : "batch_norm2d"},
           {"features", weight.numel()},
           {"eps", float_attr(node, "epsilon", 1e-5)}},
          {{"weight", weight},
           {"bias", initializer(node.input(2))},
           {"running_mean", initializer(node.input(3))},
           {"running_var", initializer(node.input(4))}});
    return node.output(0);
  }

  const onnx::GraphProto& graph_;
  bool may_take_preprocessing_;
  bool flat_;  // one example is a vector here
  std::map<std::string, const onnx::TensorProto*> initializers_;
  std::deque<onnx::TensorProto> constants_;  // Constant nodes given as value_float or value_int
  json layers_ = json::array();
  std::map<std::string, Tensor> state_;
  Preprocessing preprocessing_ = Preprocessing::none();
  double scale_ = 1, mean_ = 0, std_ = 1;  // (x * scale - mean) / std, while in that order
  double slope_ = 1, offset_ = 0;          // the same as slope x + offset, in any order
  int stage_ = 0;                          // 1 after a Mul, 2 after a Sub, 3 after a Div
  bool in_order_ = true;
};

}  // namespace

std::optional<LoweredModel> lower_to_layers(const onnx::ModelProto& model, const std::string& input,
                                            const std::string& output, bool may_take_preprocessing,
                                            bool flat_input, std::string& why) {
  return Lowering(model, may_take_preprocessing, flat_input).run(input, output, why);
}

}  // namespace lathe::onnx_detail
