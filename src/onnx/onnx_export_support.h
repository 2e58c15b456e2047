#pragma once
// Internal: what the two ONNX exporters share (src/onnx/onnx_export.cpp for models through
// Predictor, src/onnx/onnx_export_gpt.cpp for GPT language models): attributes, a graph builder
// that hands out unique value names and adds initializers as raw_data, GELU composed of ONNX
// operators, the model's header, metadata and serialization.
#include <onnx/onnx_pb.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "lathe/bundle.h"
#include "lathe/onnx.h"
#include "lathe/tensor.h"

namespace lathe::onnx_export {

void set_attribute(onnx::NodeProto& node, const std::string& name, std::int64_t value);
void set_attribute(onnx::NodeProto& node, const std::string& name, float value);
void set_attribute(onnx::NodeProto& node, const std::string& name,
                   const std::vector<std::int64_t>& values);
void set_attribute(onnx::NodeProto& node, const std::string& name,
                   const std::vector<std::string>& values);

// Appends nodes and initializers to a GraphProto and hands out unique value names.
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

  // Adds a node with one output named `output` (also the node's name) and returns the node.
  onnx::NodeProto& add(const std::string& op, const std::vector<std::string>& inputs,
                       const std::string& output);

  // A float32 initializer of the given shape holding `values` (converted to float32).
  void initializer(const std::string& name, const Tensor& values, const Shape& shape);

  // A 1-D int64 initializer (a shape for Reshape); returns its name.
  std::string int64s(const std::string& name, const std::vector<std::int64_t>& values);

  // A scalar (rank 0) int64 initializer (an index for Gather); returns its name.
  std::string int64_scalar(const std::string& name, std::int64_t value);

  // A bool initializer of the given shape (a mask for Where); returns its name.
  std::string bools(const std::string& name, const std::vector<bool>& values, const Shape& shape);

  // A shared scalar float32 constant ("const/0.5"), created on first use.
  std::string scalar(double value);

  // Adds a node or an initializer as given (an imported graph's), claiming its names.
  onnx::NodeProto& node(const onnx::NodeProto& node);
  void tensor(const onnx::TensorProto& tensor);

  // Claims a name for a graph input; false when it is taken.
  bool reserve(const std::string& name) { return names_.insert(name).second; }

  // Gives the value `value` the graph-output name `name`: renames the output of the node that
  // made it when that is the last node (nothing consumes it yet), else adds an Identity.
  void name_output(const std::string& value, const std::string& name);

 private:
  void claim(const std::string& name, const char* what);
  onnx::TensorProto& raw_tensor(const std::string& name, int type, const Shape& shape,
                                const void* data, std::size_t bytes);

  onnx::GraphProto& graph_;
  std::set<std::string> names_{"input"};
};

// GELU of `x` (ONNX has Gelu only from opset 20), composed in the order lathe's kernel computes
// it: exact (erf) or the tanh approximation. Value names are `prefix` + "/" + a step name.
// Returns the output's name.
std::string add_gelu(GraphBuilder& g, const std::string& x, bool tanh, const std::string& prefix);

// A graph input or output's ValueInfo: its element type (float32, int64 or string) and its
// dimensions, numbers or symbolic names ("N", "T").
void set_tensor_type(onnx::ValueInfoProto& info, const OnnxTensorInfo& tensor);

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value);

// Sets the IR version, the default operator set and lathe as the producer.
void start_model(onnx::ModelProto& model);

// Serializes `model` into result.bytes and counts its nodes and initializers; throws lathe::Error
// for a model over protobuf's 2 GiB limit.
void finish_model(const onnx::ModelProto& model, OnnxModel& result);

// The ONNX model of a GPT language-model bundle (src/onnx/onnx_export_gpt.cpp).
OnnxModel build_gpt_onnx_model(const LoadedBundle& bundle);

}  // namespace lathe::onnx_export
