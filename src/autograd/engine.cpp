// Tensor::backward: topological order of the graph behind a tensor, walked in reverse.
#include <fmt/format.h>

#include <unordered_map>
#include <unordered_set>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "src/tensor/raw_kernels.h"

namespace lathe {
namespace {

// Nodes reachable from root, each after every node that consumes its output. The list owns the
// nodes, so releasing one node's inputs during backward cannot free a node still to be visited.
std::vector<std::shared_ptr<Node>> reverse_topological_order(const std::shared_ptr<Node>& root) {
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> visited;
  std::vector<std::pair<std::shared_ptr<Node>, std::size_t>> stack{{root, 0}};
  visited.insert(root.get());
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < node->inputs.size()) {
      const Tensor& input = node->inputs[next_input++];
      if (!input.defined()) continue;
      const std::shared_ptr<Node>& child = input.grad_fn();
      if (child && visited.insert(child.get()).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(node);
      stack.pop_back();
    }
  }
  return {order.rbegin(), order.rend()};
}

// Sums a further gradient into `slot` with the tensor floor's add, not the op: autograd calls no
// ops, and gradients of one tensor always share its shape and dtype, so no broadcasting is due.
void accumulate(Tensor& slot, const Tensor& gradient) {
  if (!slot.defined()) {
    slot = gradient;
  } else {
    slot = detail::add_same_shape(slot, gradient);
  }
}

// A leaf's gradient must have storage of its own (optimizers and clipping write to it): a
// gradient nobody else references is taken as it is, anything shared is copied.
Tensor owned(const Tensor& gradient) {
  const bool unshared = gradient.handle_count() == 1 && gradient.impl()->storage.use_count() == 1;
  return unshared ? gradient.detach() : gradient.clone();
}

void check_gradient(const Node& node, std::size_t index, const Tensor& input,
                    const Tensor& gradient) {
  if (gradient.shape() != input.shape() || gradient.dtype() != input.dtype())
    throw Error(fmt::format(
        "backward: op '{}' returned a gradient {} {} for input {} of {} {} (internal error)",
        op_name(node.op), dtype_name(gradient.dtype()), shape_str(gradient.shape()), index,
        dtype_name(input.dtype()), shape_str(input.shape())));
}

// For each leaf that wants a gradient: how many gradient contributions it gets in this backward.
std::unordered_map<TensorImpl*, int> leaf_contributions(
    const std::vector<std::shared_ptr<Node>>& order) {
  std::unordered_map<TensorImpl*, int> counts;
  for (const std::shared_ptr<Node>& node : order)
    for (std::size_t i = 0; i < node->inputs.size(); ++i)
      if (node->needs_grad[i] && !node->inputs[i].grad_fn()) ++counts[node->inputs[i].impl()];
  return counts;
}

}  // namespace

void Tensor::backward(const Tensor& upstream, bool retain_graph) const {
  if (!defined()) throw Error("backward: called on an undefined tensor");
  if (!requires_grad())
    throw Error(
        fmt::format("backward: the tensor of shape {} does not require a gradient and "
                    "has no graph behind it",
                    shape_str(shape())));
  Tensor seed;
  if (upstream.defined()) {
    if (upstream.shape() != shape() || upstream.dtype() != dtype())
      throw Error(fmt::format("backward: upstream gradient {} {} does not match the output {} {}",
                              dtype_name(upstream.dtype()), shape_str(upstream.shape()),
                              dtype_name(dtype()), shape_str(shape())));
    seed = upstream.detach();
  } else {
    if (numel() != 1)
      throw Error(
          fmt::format("backward: the output of shape {} is not a scalar; pass an upstream "
                      "gradient of that shape",
                      shape_str(shape())));
    seed = Tensor::ones(shape(), dtype());
  }

  NoGradGuard no_grad;
  const std::shared_ptr<Node> root = grad_fn();
  GradientListener* const listener = current_gradient_listener();
  if (!root) {  // a leaf: its gradient is the seed itself
    accumulate(impl()->grad, seed.clone());
    if (listener) listener->gradient_ready(*this);
    return;
  }
  const std::vector<std::shared_ptr<Node>> order = reverse_topological_order(root);
  std::unordered_map<TensorImpl*, int> pending;  // contributions each leaf still waits for
  if (listener) pending = leaf_contributions(order);
  // One contribution to `leaf` has arrived (or will not come); the last one makes it ready.
  const auto contribution_done = [&](const Tensor& leaf) {
    if (--pending[leaf.impl()] == 0) listener->gradient_ready(leaf);
  };
  std::unordered_map<Node*, Tensor> output_grads{{root.get(), seed}};
  for (const std::shared_ptr<Node>& node : order) {
    if (node->released)
      throw Error(
          fmt::format("backward: the graph through op '{}' was already freed by an "
                      "earlier backward; pass retain_graph=true to backward twice",
                      op_name(node->op)));
    auto found = output_grads.find(node.get());
    if (found == output_grads.end()) {  // no gradient flows through this node
      if (listener)
        for (std::size_t i = 0; i < node->inputs.size(); ++i)
          if (node->needs_grad[i] && !node->inputs[i].grad_fn()) contribution_done(node->inputs[i]);
      continue;
    }
    const Tensor grad_output = std::move(found->second);
    output_grads.erase(found);

    const std::vector<Tensor> input_grads = node->backward(grad_output, node->needs_grad);
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      if (!node->needs_grad[i]) continue;
      const Tensor& input = node->inputs[i];
      const Tensor& gradient = input_grads.at(i);
      check_gradient(*node, i, input, gradient);
      if (Node* producer = input.grad_fn().get()) {
        accumulate(output_grads[producer], gradient);
      } else {
        Tensor& slot = input.impl()->grad;
        slot = slot.defined() ? detail::add_same_shape(slot, gradient) : owned(gradient);
        if (listener) contribution_done(input);
      }
    }
    if (!retain_graph) {
      node->backward = nullptr;
      node->inputs.clear();
      node->needs_grad.clear();
      node->released = true;
    }
  }
}

}  // namespace lathe
