#pragma once
// Internal: the checked, protobuf-free form of an ONNX graph that the executor runs, and the
// interface every operator kernel implements (src/onnx/import/ops_*.cpp).
#include <fmt/format.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lathe/onnx_import.h"

namespace onnx {
class ModelProto;
}

namespace lathe::onnx_detail {

struct Attribute {
  enum class Kind { Float, Int, String, Tensor, Floats, Ints, Strings, Graph, Other } kind;
  double f = 0;
  std::int64_t i = 0;
  std::string s;
  OnnxValue t;
  std::vector<double> floats;
  std::vector<std::int64_t> ints;
  std::vector<std::string> strings;
};

struct Node {
  std::string name;  // the node's name, or "#<index> <op_type>" when the model gives none
  std::string op_type;
  std::string domain;                // "" for the default (ai.onnx) domain
  std::int64_t opset = 0;            // the version of the node's domain the model imports
  std::vector<std::string> inputs;   // "" for an omitted optional input
  std::vector<std::string> outputs;  // "" for an omitted optional output
  std::map<std::string, Attribute> attributes;
};

struct Graph {
  std::vector<Node> nodes;  // in an order where every input is produced before it is used
  std::map<std::string, OnnxValue> initializers;
  std::vector<OnnxGraphIO> inputs;  // without the initializers
  std::vector<OnnxGraphIO> outputs;
  std::int64_t opset = 0;
  OnnxLimits limits;
};

// What a kernel sees of the node it runs: the node, its input values (nullopt where omitted),
// and typed access to attributes with ONNX's defaults.
class OpContext {
 public:
  OpContext(const Node& node, std::vector<std::optional<OnnxValue>> inputs,
            const OnnxLimits& limits)
      : node_(node), inputs_(std::move(inputs)), limits_(limits) {}

  const Node& node() const { return node_; }
  std::int64_t opset() const { return node_.opset; }
  std::size_t input_count() const { return inputs_.size(); }
  bool has_input(std::size_t i) const { return i < inputs_.size() && inputs_[i].has_value(); }
  const OnnxValue& input(std::size_t i) const;  // throws if absent
  std::size_t output_count() const { return node_.outputs.size(); }

  bool has_attr(const std::string& name) const { return node_.attributes.count(name) != 0; }
  std::int64_t attr_int(const std::string& name, std::int64_t fallback) const;
  double attr_float(const std::string& name, double fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  std::vector<std::int64_t> attr_ints(const std::string& name,
                                      const std::vector<std::int64_t>& fallback = {}) const;
  std::vector<double> attr_floats(const std::string& name,
                                  const std::vector<double>& fallback = {}) const;
  const Attribute* attr(const std::string& name) const;  // nullptr if absent

  // An error naming this node: "node 'conv1' (Conv): <message>".
  [[noreturn]] void fail(const std::string& message) const;
  [[noreturn]] void unsupported(const std::string& message) const;
  // Throws unless `bytes` fit OnnxLimits::max_tensor_bytes (and the element count fits).
  void check_size(const Shape& shape, OnnxType type) const;

 private:
  const Node& node_;
  std::vector<std::optional<OnnxValue>> inputs_;
  const OnnxLimits& limits_;
};

using Kernel = std::function<std::vector<OnnxValue>(const OpContext&)>;

struct OpInfo {
  Kernel kernel;
  std::int64_t since = 1;  // the oldest opset version the kernel implements
};

// Loading (model.cpp) and running (executor.cpp).
std::shared_ptr<Graph> read_graph(const onnx::ModelProto& model,
                                  const std::filesystem::path& folder, const OnnxLimits& limits);
std::vector<OnnxValue> run_graph(const Graph& graph,
                                 const std::map<std::string, OnnxValue>& inputs);

// op_type (default domain) -> kernel. Each ops_*.cpp fills its part.
using OpTable = std::map<std::string, OpInfo>;
const OpTable& op_table();
void add_elementwise_ops(OpTable& table);
void add_math_ops(OpTable& table);
void add_shape_ops(OpTable& table);
void add_constant_ops(OpTable& table);
void add_index_ops(OpTable& table);
void add_reduce_ops(OpTable& table);
void add_matmul_ops(OpTable& table);
void add_conv_ops(OpTable& table);
void add_pool_ops(OpTable& table);
void add_normalization_ops(OpTable& table);
void add_resize_ops(OpTable& table);

// Shared helpers for kernels (src/onnx/import/value.cpp).
std::size_t onnx_type_size(OnnxType type);  // bytes of one element as ONNX stores it
bool is_float_type(OnnxType type);          // float, double, float16, bfloat16
bool is_integer_type(OnnxType type);        // every signed and unsigned integer type
bool is_signed_type(OnnxType type);
OnnxType onnx_type_of(DType dtype);  // Float32 -> Float, Float64 -> Double, Int64 -> Int64
// A value of `type` holding `tensor` (whose dtype must be the storage dtype of `type`), with
// integers wrapped to the type's range and float16/bfloat16 rounded: what every kernel returns.
OnnxValue make_value(Tensor tensor, OnnxType type);
// `value` converted to `type` (ONNX Cast semantics for the supported types).
OnnxValue cast_value(const OnnxValue& value, OnnxType type);
// The int64 values of a 0-D or 1-D integer tensor (shapes, axes, pads ...).
std::vector<std::int64_t> int_values(const OpContext& ctx, const OnnxValue& value,
                                     const char* what);
// Resolves a possibly negative axis for a rank, failing with the node's name.
std::int64_t resolve_axis(const OpContext& ctx, std::int64_t axis, std::int64_t rank);
// Calls f(T{}) for the storage type of `value` (float, double or std::int64_t).
template <class F>
decltype(auto) visit_storage(const Tensor& tensor, F&& f) {
  switch (tensor.dtype()) {
    case DType::Float32:
      return f(float{});
    case DType::Float64:
      return f(double{});
    default:
      return f(std::int64_t{});
  }
}

}  // namespace lathe::onnx_detail
