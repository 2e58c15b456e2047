// Loading: ModelProto -> onnx_detail::Graph, with every check an untrusted model needs done once
// here, so that the executor can trust the wiring (every input produced before use, no cycles,
// every operator known).
#include <google/protobuf/io/coded_stream.h>

#include <deque>
#include <set>
#include <unordered_map>

#include "src/io/file_bytes.h"
#include "src/onnx/import/graph.h"
#include "src/onnx/import/tensor_proto.h"

namespace lathe {

namespace onnx_detail {
namespace {

constexpr std::int64_t kMaxOpset = 18;

std::string node_label(const onnx::NodeProto& node, int index) {
  return node.name().empty() ? fmt::format("#{} {}", index, node.op_type()) : node.name();
}

OnnxGraphIO graph_io(const onnx::ValueInfoProto& info, const std::string& role) {
  OnnxGraphIO io;
  io.name = info.name();
  if (!info.has_type() || !info.type().has_tensor_type())
    throw OnnxUnsupported(
        fmt::format("graph {} '{}' is not a tensor (sequences, maps and "
                    "optionals are not supported)",
                    role, info.name()));
  const auto& tensor_type = info.type().tensor_type();
  io.type = static_cast<OnnxType>(tensor_type.elem_type());
  try {
    onnx_storage_dtype(io.type);  // throws OnnxUnsupported for strings and complex numbers
  } catch (const OnnxUnsupported& e) {
    throw OnnxUnsupported(fmt::format("graph {} '{}': {}", role, info.name(), e.what()));
  }
  if (tensor_type.has_shape()) {
    for (const auto& dim : tensor_type.shape().dim()) {
      if (dim.has_dim_value())
        io.dims.push_back(std::to_string(dim.dim_value()));
      else if (dim.has_dim_param() && !dim.dim_param().empty())
        io.dims.push_back(dim.dim_param());
      else
        io.dims.push_back("?");
    }
  }
  return io;
}

Attribute read_attribute(const onnx::AttributeProto& proto, const std::string& where,
                         const OnnxLimits& limits) {
  if (!proto.ref_attr_name().empty())
    throw OnnxUnsupported(
        fmt::format("{}: attribute '{}' refers to a function attribute", where, proto.name()));
  Attribute a{Attribute::Kind::Other};
  switch (proto.type()) {
    case onnx::AttributeProto::FLOAT:
      a.kind = Attribute::Kind::Float;
      a.f = proto.f();
      break;
    case onnx::AttributeProto::INT:
      a.kind = Attribute::Kind::Int;
      a.i = proto.i();
      break;
    case onnx::AttributeProto::STRING:
      a.kind = Attribute::Kind::String;
      a.s = proto.s();
      break;
    case onnx::AttributeProto::TENSOR:
      a.kind = Attribute::Kind::Tensor;
      a.t = tensor_from_proto(proto.t(), {}, limits,
                              fmt::format("{}: attribute '{}'", where, proto.name()));
      break;
    case onnx::AttributeProto::FLOATS:
      a.kind = Attribute::Kind::Floats;
      a.floats.assign(proto.floats().begin(), proto.floats().end());
      break;
    case onnx::AttributeProto::INTS:
      a.kind = Attribute::Kind::Ints;
      a.ints.assign(proto.ints().begin(), proto.ints().end());
      break;
    case onnx::AttributeProto::STRINGS:
      a.kind = Attribute::Kind::Strings;
      a.strings.assign(proto.strings().begin(), proto.strings().end());
      break;
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      a.kind = Attribute::Kind::Graph;
      break;
    default:
      break;  // sparse tensors, type protos: Kind::Other, which no kernel accepts
  }
  return a;
}

// Kahn's algorithm over the nodes' data dependencies. Inputs, initializers and the empty name
// (an omitted optional input) are available from the start.
std::vector<Node> sort_nodes(std::vector<Node> nodes, const std::set<std::string>& available) {
  std::unordered_map<std::string, std::size_t> producer;
  for (std::size_t k = 0; k < nodes.size(); ++k)
    for (const auto& out : nodes[k].outputs) {
      if (out.empty()) continue;
      if (available.count(out))
        throw Error(
            fmt::format("node '{}' ({}): output '{}' has the name of a graph input or "
                        "initializer",
                        nodes[k].name, nodes[k].op_type, out));
      if (!producer.emplace(out, k).second)
        throw Error(fmt::format("node '{}' ({}): output '{}' is also produced by node '{}'",
                                nodes[k].name, nodes[k].op_type, out, nodes[producer[out]].name));
    }
  std::vector<std::vector<std::size_t>> users(nodes.size());
  std::vector<std::size_t> waiting(nodes.size(), 0);
  for (std::size_t k = 0; k < nodes.size(); ++k)
    for (const auto& in : nodes[k].inputs) {
      if (in.empty() || available.count(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        throw Error(
            fmt::format("node '{}' ({}): input '{}' is not a graph input, an initializer "
                        "or any node's output",
                        nodes[k].name, nodes[k].op_type, in));
      users[it->second].push_back(k);
      ++waiting[k];
    }
  std::deque<std::size_t> ready;
  for (std::size_t k = 0; k < nodes.size(); ++k)
    if (waiting[k] == 0) ready.push_back(k);
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  std::vector<bool> done(nodes.size(), false);
  while (!ready.empty()) {
    const std::size_t k = ready.front();
    ready.pop_front();
    done[k] = true;
    for (std::size_t user : users[k])
      if (--waiting[user] == 0) ready.push_back(user);
    sorted.push_back(std::move(nodes[k]));
  }
  if (sorted.size() != nodes.size()) {
    for (std::size_t k = 0; k < nodes.size(); ++k)
      if (!done[k])
        throw Error(fmt::format("node '{}' ({}): the graph has a cycle through this node",
                                nodes[k].name, nodes[k].op_type));
  }
  return sorted;
}

}  // namespace

std::shared_ptr<Graph> read_graph(const onnx::ModelProto& model,
                                  const std::filesystem::path& folder, const OnnxLimits& limits) {
  auto graph = std::make_shared<Graph>();
  graph->limits = limits;
  std::map<std::string, std::int64_t> opsets;
  for (const auto& op : model.opset_import()) {
    const std::string domain = op.domain() == "ai.onnx" ? "" : op.domain();
    opsets[domain] = op.version();
  }
  // A model of other domains only (ai.onnx.ml, training) may import no default operator set;
  // a default-domain node then fails below.
  graph->opset = opsets.count("") ? opsets[""] : (model.ir_version() < 3 ? 1 : 0);
  if (graph->opset > kMaxOpset)
    throw OnnxUnsupported(
        fmt::format("operator set version {} (lathe reads 1 to {})", graph->opset, kMaxOpset));
  if (!model.has_graph()) throw Error("the model has no graph");
  const onnx::GraphProto& g = model.graph();
  if (g.sparse_initializer_size() > 0)
    throw OnnxUnsupported(
        fmt::format("sparse initializer '{}'", g.sparse_initializer(0).values().name()));

  std::set<std::string> available = {""};
  std::uint64_t total_bytes = 0;
  for (const auto& init : g.initializer()) {
    const std::string what = fmt::format("initializer '{}'", init.name());
    if (init.name().empty()) throw Error("an initializer has no name");
    OnnxValue value = tensor_from_proto(init, folder, limits, what);
    total_bytes +=
        static_cast<std::uint64_t>(value.tensor.numel()) * dtype_size(value.tensor.dtype());
    if (total_bytes > limits.max_model_bytes * 2)
      throw Error(fmt::format("{}: the initializers together exceed {} bytes", what,
                              limits.max_model_bytes * 2));
    if (!graph->initializers.emplace(init.name(), std::move(value)).second)
      throw Error(fmt::format("{}: given twice", what));
    available.insert(init.name());
  }
  for (const auto& input : g.input()) {
    if (graph->initializers.count(input.name())) continue;  // an initializer's default value
    if (!available.insert(input.name()).second)
      throw Error(fmt::format("graph input '{}' is declared twice", input.name()));
    graph->inputs.push_back(graph_io(input, "input"));
  }

  const OpTable& table = op_table();
  std::vector<Node> nodes;
  nodes.reserve(static_cast<std::size_t>(g.node_size()));
  for (int k = 0; k < g.node_size(); ++k) {
    const onnx::NodeProto& proto = g.node(k);
    Node node;
    node.name = node_label(proto, k);
    node.op_type = proto.op_type();
    node.domain = proto.domain() == "ai.onnx" ? "" : proto.domain();
    const std::string where = fmt::format("node '{}' ({})", node.name, node.op_type);
    if (!node.domain.empty())
      throw OnnxUnsupported(
          fmt::format("{}: operators of domain '{}' are not supported; lathe runs the "
                      "default ONNX domain",
                      where, node.domain));
    node.opset = graph->opset;
    if (node.opset < 1)
      throw Error(
          fmt::format("{}: the model imports no version of the default operator set "
                      "(opset_import)",
                      where));
    const auto op = table.find(node.op_type);
    if (op == table.end())
      throw OnnxUnsupported(fmt::format("{}: operator {} is not supported", where, node.op_type));
    if (node.opset < op->second.since)
      throw OnnxUnsupported(fmt::format("{}: {} before operator set {} (the model uses {})", where,
                                        node.op_type, op->second.since, node.opset));
    node.inputs.assign(proto.input().begin(), proto.input().end());
    node.outputs.assign(proto.output().begin(), proto.output().end());
    for (const auto& attribute : proto.attribute()) {
      Attribute a = read_attribute(attribute, where, limits);
      if (a.kind == Attribute::Kind::Graph)
        throw OnnxUnsupported(fmt::format("{}: subgraph attribute '{}'", where, attribute.name()));
      node.attributes[attribute.name()] = std::move(a);
    }
    nodes.push_back(std::move(node));
  }
  graph->nodes = sort_nodes(std::move(nodes), available);

  std::set<std::string> produced = available;
  for (const auto& node : graph->nodes) produced.insert(node.outputs.begin(), node.outputs.end());
  for (const auto& output : g.output()) {
    if (!produced.count(output.name()) || output.name().empty())
      throw Error(
          fmt::format("graph output '{}' is not produced by any node, input or "
                      "initializer",
                      output.name()));
    graph->outputs.push_back(graph_io(output, "output"));
  }
  return graph;
}

}  // namespace onnx_detail

std::string OnnxGraphIO::describe() const {
  std::string dims_text;
  for (std::size_t k = 0; k < dims.size(); ++k) dims_text += (k ? "," : "") + dims[k];
  return fmt::format("{} {} [{}]", name, onnx_type_name(type), dims_text);
}

OnnxGraph OnnxGraph::parse(const std::string& bytes, const std::filesystem::path& folder,
                           const OnnxLimits& limits) {
  if (bytes.size() > limits.max_model_bytes)
    throw Error(fmt::format("the model has {} bytes, over the limit of {}", bytes.size(),
                            limits.max_model_bytes));
  onnx::ModelProto model;
  google::protobuf::io::CodedInputStream stream(reinterpret_cast<const std::uint8_t*>(bytes.data()),
                                                static_cast<int>(bytes.size()));
  stream.SetTotalBytesLimit(static_cast<int>(std::min<std::uint64_t>(bytes.size() + 1, INT32_MAX)));
  stream.SetRecursionLimit(64);
  if (!model.ParseFromCodedStream(&stream) || !stream.ConsumedEntireMessage())
    throw Error("not a valid ONNX model (the protobuf ModelProto does not parse)");
  OnnxGraph result;
  result.graph_ = onnx_detail::read_graph(model, folder, limits);
  return result;
}

OnnxGraph OnnxGraph::load(const std::filesystem::path& path, const OnnxLimits& limits) {
  const auto raw = detail::read_raw_file(path, limits.max_model_bytes);
  try {
    return parse(std::string(detail::as_chars(raw)),
                 path.parent_path().empty() ? "." : path.parent_path(), limits);
  } catch (const OnnxUnsupported& e) {
    throw OnnxUnsupported(fmt::format("{}: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  }
}

const std::vector<OnnxGraphIO>& OnnxGraph::inputs() const {
  return graph_->inputs;
}
const std::vector<OnnxGraphIO>& OnnxGraph::outputs() const {
  return graph_->outputs;
}
std::int64_t OnnxGraph::opset() const {
  return graph_->opset;
}
std::size_t OnnxGraph::node_count() const {
  return graph_->nodes.size();
}

std::map<std::string, int> OnnxGraph::operator_counts() const {
  std::map<std::string, int> counts;
  for (const auto& node : graph_->nodes) ++counts[node.op_type];
  return counts;
}

std::vector<NamedTensor> OnnxGraph::parameters() const {
  std::vector<NamedTensor> out;
  for (const auto& [name, value] : graph_->initializers)
    if (value.tensor.dtype() != DType::Int64) out.push_back({name, value.tensor});
  return out;
}

}  // namespace lathe
