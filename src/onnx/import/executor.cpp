// Running a loaded graph: the nodes in their checked order, each value released after its last
// use, and a refusal (not a silently wrong gradient) where a node would cut the graph a
// gradient needs to flow through.
#include <unordered_map>

#include "lathe/autograd.h"
#include "src/onnx/import/graph.h"

namespace lathe {

namespace onnx_detail {

const OpTable& op_table() {
  static const OpTable table = [] {
    OpTable t;
    add_elementwise_ops(t);
    add_math_ops(t);
    add_shape_ops(t);
    add_constant_ops(t);
    add_index_ops(t);
    add_reduce_ops(t);
    add_matmul_ops(t);
    add_conv_ops(t);
    add_pool_ops(t);
    add_normalization_ops(t);
    add_resize_ops(t);
    return t;
  }();
  return table;
}

namespace {

void check_input(const OnnxGraphIO& io, const OnnxValue& value) {
  if (value.type != io.type)
    throw Error(fmt::format("input '{}' must be {}, got {}", io.name, onnx_type_name(io.type),
                            onnx_type_name(value.type)));
  if (value.tensor.dtype() != onnx_storage_dtype(value.type))
    throw Error(fmt::format("input '{}': a {} value must be held in a {} tensor", io.name,
                            onnx_type_name(value.type),
                            dtype_name(onnx_storage_dtype(value.type))));
  if (io.dims.empty()) return;  // no shape declared
  const Shape& shape = value.shape();
  const std::string declared = fmt::format("[{}]", fmt::join(io.dims, ","));
  if (shape.size() != io.dims.size())
    throw Error(
        fmt::format("input '{}' must have shape {}, got {}", io.name, declared, shape_str(shape)));
  for (std::size_t k = 0; k < shape.size(); ++k) {
    const std::string& dim = io.dims[k];
    if (!dim.empty() && std::isdigit(static_cast<unsigned char>(dim[0])) &&
        std::to_string(shape[k]) != dim)
      throw Error(fmt::format("input '{}' must have shape {}, got {}", io.name, declared,
                              shape_str(shape)));
  }
}

bool needs_grad(const OnnxValue& value) {
  return value.tensor.requires_grad() && value.tensor.dtype() != DType::Int64;
}

}  // namespace

std::vector<OnnxValue> run_graph(const Graph& graph,
                                 const std::map<std::string, OnnxValue>& inputs) {
  std::unordered_map<std::string, OnnxValue> values;
  for (const auto& [name, value] : graph.initializers) values[name] = value;
  for (const auto& io : graph.inputs) {
    auto it = inputs.find(io.name);
    if (it == inputs.end()) throw Error(fmt::format("input '{}' is not given", io.name));
    check_input(io, it->second);
    values[io.name] = it->second;
  }
  for (const auto& [name, value] : inputs)
    if (!values.count(name) || graph.initializers.count(name))
      throw Error(fmt::format("'{}' is not an input of the model", name));

  // The last node that reads each value; graph outputs are kept to the end.
  std::unordered_map<std::string, std::size_t> last_use;
  for (std::size_t k = 0; k < graph.nodes.size(); ++k)
    for (const auto& in : graph.nodes[k].inputs) last_use[in] = k;
  for (const auto& out : graph.outputs) last_use[out.name] = graph.nodes.size();

  const OpTable& table = op_table();
  for (std::size_t k = 0; k < graph.nodes.size(); ++k) {
    const Node& node = graph.nodes[k];
    std::vector<std::optional<OnnxValue>> args;
    bool grad_in = false;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        args.emplace_back(std::nullopt);
        continue;
      }
      const OnnxValue& v = values.at(in);
      grad_in = grad_in || (grad_enabled() && needs_grad(v));
      args.emplace_back(v);
    }
    const OpContext ctx(node, std::move(args), graph.limits);
    std::vector<OnnxValue> outs = table.at(node.op_type).kernel(ctx);
    for (std::size_t o = 0; o < node.outputs.size(); ++o) {
      if (node.outputs[o].empty()) continue;
      if (o >= outs.size())
        ctx.unsupported(fmt::format("output {} ('{}') is not computed", o, node.outputs[o]));
      if (grad_in && outs[o].tensor.dtype() != DType::Int64 && !outs[o].tensor.requires_grad())
        ctx.unsupported(
            "lathe has no gradient for this operator (or this use of it), so the "
            "model cannot be trained through it");
      values[node.outputs[o]] = std::move(outs[o]);
    }
    for (const auto& in : node.inputs) {
      auto it = last_use.find(in);
      if (it != last_use.end() && it->second == k && !graph.initializers.count(in))
        values.erase(in);
    }
  }
  std::vector<OnnxValue> result;
  for (const auto& out : graph.outputs) result.push_back(values.at(out.name));
  return result;
}

}  // namespace onnx_detail

std::vector<OnnxValue> OnnxGraph::run(const std::map<std::string, OnnxValue>& inputs) const {
  return onnx_detail::run_graph(*graph_, inputs);
}

}  // namespace lathe
