// What the two ONNX exporters share (see onnx_export_support.h): attributes, the graph builder,
// GELU composed of ONNX operators, the model's header, metadata and serialization.
#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include <bit>
#include <climits>
#include <cmath>
#include <numbers>

#include "lathe/error.h"
#include "lathe/onnx.h"
#include "lathe/version.h"
#include "src/onnx/onnx_export_support.h"

namespace lathe {
namespace onnx_export {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; this exporter copies float32 bytes as they are");

void set_attribute(onnx::NodeProto& node, const std::string& name, std::int64_t value) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(value);
}

void set_attribute(onnx::NodeProto& node, const std::string& name, float value) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(value);
}

void set_attribute(onnx::NodeProto& node, const std::string& name,
                   const std::vector<std::int64_t>& values) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (std::int64_t v : values) a->add_ints(v);
}

void set_attribute(onnx::NodeProto& node, const std::string& name,
                   const std::vector<std::string>& values) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRINGS);
  for (const std::string& v : values) a->add_strings(v);
}

void GraphBuilder::claim(const std::string& name, const char* what) {
  if (!names_.insert(name).second)
    throw Error(fmt::format("export: internal error: {} name '{}' used twice", what, name));
}

onnx::NodeProto& GraphBuilder::add(const std::string& op, const std::vector<std::string>& inputs,
                                   const std::string& output) {
  claim(output, "value");
  onnx::NodeProto* node = graph_.add_node();
  node->set_op_type(op);
  node->set_name(output);
  for (const std::string& input : inputs) node->add_input(input);
  node->add_output(output);
  return *node;
}

onnx::NodeProto& GraphBuilder::node(const onnx::NodeProto& node) {
  for (const std::string& output : node.output())
    if (!output.empty()) claim(output, "value");
  return *graph_.add_node() = node;
}

void GraphBuilder::tensor(const onnx::TensorProto& tensor) {
  claim(tensor.name(), "tensor");
  *graph_.add_initializer() = tensor;
}

onnx::TensorProto& GraphBuilder::raw_tensor(const std::string& name, int type, const Shape& shape,
                                            const void* data, std::size_t bytes) {
  claim(name, "tensor");
  onnx::TensorProto* t = graph_.add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (std::int64_t d : shape) t->add_dims(d);
  t->set_raw_data(std::string(static_cast<const char*>(data), bytes));
  return *t;
}

void GraphBuilder::initializer(const std::string& name, const Tensor& values, const Shape& shape) {
  const Tensor data = values.to(DType::Float32);
  raw_tensor(name, onnx::TensorProto::FLOAT, shape, data.data<float>(),
             static_cast<std::size_t>(data.numel()) * sizeof(float));
}

std::string GraphBuilder::int64s(const std::string& name, const std::vector<std::int64_t>& values) {
  raw_tensor(name, onnx::TensorProto::INT64, {static_cast<std::int64_t>(values.size())},
             values.data(), values.size() * sizeof(std::int64_t));
  return name;
}

std::string GraphBuilder::int64_scalar(const std::string& name, std::int64_t value) {
  raw_tensor(name, onnx::TensorProto::INT64, {}, &value, sizeof value);
  return name;
}

std::string GraphBuilder::bools(const std::string& name, const std::vector<bool>& values,
                                const Shape& shape) {
  // ONNX stores a bool as one byte, 0 or 1.
  const std::string bytes(values.begin(), values.end());
  raw_tensor(name, onnx::TensorProto::BOOL, shape, bytes.data(), bytes.size());
  return name;
}

std::string GraphBuilder::scalar(double value) {
  const auto f = static_cast<float>(value);
  const std::string name = fmt::format("const/{}", f);
  if (!names_.count(name)) initializer(name, Tensor::scalar(f), {});
  return name;
}

void GraphBuilder::name_output(const std::string& value, const std::string& name) {
  const int last = graph_.node_size() - 1;
  if (last >= 0 && graph_.node(last).output(0) == value && names_.insert(name).second) {
    graph_.mutable_node(last)->set_output(0, name);
    return;
  }
  add("Identity", {value}, name);
}

// none: (0.5 x) (1 + erf(x / sqrt 2)); tanh: (0.5 x) (1 + tanh(k (x + ((c x) x) x))).
std::string add_gelu(GraphBuilder& g, const std::string& x, bool tanh, const std::string& prefix) {
  const auto v = [&](const char* step) { return prefix + "/" + step; };
  std::string phi;  // 1 + erf(...) or 1 + tanh(...)
  if (tanh) {
    g.add("Mul", {x, g.scalar(0.044715)}, v("cx"));
    g.add("Mul", {v("cx"), x}, v("cx2"));
    g.add("Mul", {v("cx2"), x}, v("cx3"));
    g.add("Add", {x, v("cx3")}, v("sum"));
    g.add("Mul", {v("sum"), g.scalar(std::sqrt(2.0 / std::numbers::pi))}, v("inner"));
    g.add("Tanh", {v("inner")}, v("tanh"));
    phi = g.add("Add", {v("tanh"), g.scalar(1.0)}, v("one_plus")).output(0);
  } else {
    g.add("Div", {x, g.scalar(std::numbers::sqrt2)}, v("scaled"));
    g.add("Erf", {v("scaled")}, v("erf"));
    phi = g.add("Add", {v("erf"), g.scalar(1.0)}, v("one_plus")).output(0);
  }
  g.add("Mul", {x, g.scalar(0.5)}, v("half_x"));
  return g.add("Mul", {v("half_x"), phi}, v("gelu")).output(0);
}

void set_tensor_type(onnx::ValueInfoProto& info, const OnnxTensorInfo& tensor) {
  info.set_name(tensor.name);
  onnx::TypeProto_Tensor* type = info.mutable_type()->mutable_tensor_type();
  type->set_elem_type(tensor.type == "int64"    ? onnx::TensorProto::INT64
                      : tensor.type == "string" ? onnx::TensorProto::STRING
                                                : onnx::TensorProto::FLOAT);
  onnx::TensorShapeProto* shape = type->mutable_shape();
  for (const std::string& dim : tensor.shape) {
    onnx::TensorShapeProto_Dimension* d = shape->add_dim();
    const bool number = !dim.empty() && std::all_of(dim.begin(), dim.end(),
                                                    [](char c) { return c >= '0' && c <= '9'; });
    if (number)
      d->set_dim_value(std::stoll(dim));
    else
      d->set_dim_param(dim);
  }
}

void add_metadata(onnx::ModelProto& model, const std::string& key, const std::string& value) {
  onnx::StringStringEntryProto* entry = model.add_metadata_props();
  entry->set_key(key);
  entry->set_value(value);
}

void start_model(onnx::ModelProto& model) {
  model.set_ir_version(kOnnxIrVersion);
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpsetVersion);
  model.set_producer_name("lathe");
  model.set_producer_version(version());
}

void finish_model(const onnx::ModelProto& model, OnnxModel& result) {
  const std::size_t size = model.ByteSizeLong();
  if (size > static_cast<std::size_t>(INT_MAX))
    throw Error(fmt::format(
        "export: the ONNX model would be {} bytes; protobuf files are limited to 2 GiB and "
        "lathe does not write ONNX external data",
        size));
  if (!model.SerializeToString(&result.bytes))
    throw Error("export: protobuf could not serialize the ONNX model");
  result.nodes = static_cast<std::size_t>(model.graph().node_size());
  result.initializers = static_cast<std::size_t>(model.graph().initializer_size());
}

}  // namespace onnx_export

}  // namespace lathe
