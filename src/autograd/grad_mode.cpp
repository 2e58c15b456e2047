#include <fmt/format.h>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "src/tensor/node_name.h"

namespace lathe {
namespace {
thread_local bool t_grad_enabled = true;
thread_local GradientListener* t_gradient_listener = nullptr;

// Printing names the op behind a tensor through this (src/tensor/node_name.h). Installed during
// static initialization of this file, which also defines record(), the only maker of nodes: a
// program that holds a tensor with a grad_fn has linked this file and run its initializer.
[[maybe_unused]] const bool g_node_name_installed =
    (detail::set_node_name_fn([](const Node& node) { return op_name(node.op); }), true);
}  // namespace

GradientListenerGuard::GradientListenerGuard(GradientListener& listener)
    : previous_(t_gradient_listener) {
  t_gradient_listener = &listener;
}
GradientListenerGuard::~GradientListenerGuard() {
  t_gradient_listener = previous_;
}
GradientListener* current_gradient_listener() {
  return t_gradient_listener;
}

bool grad_enabled() {
  return t_grad_enabled;
}

NoGradGuard::NoGradGuard() : previous_(t_grad_enabled) {
  t_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  t_grad_enabled = previous_;
}

const char* op_name(Op op) {
  switch (op) {
#define LATHE_OP_NAME(id, name) \
  case Op::id:                  \
    return name;
    LATHE_DIFFERENTIABLE_OPS(LATHE_OP_NAME)
#undef LATHE_OP_NAME
    case Op::Count:
      break;
  }
  return "unknown";
}

std::vector<Op> all_differentiable_ops() {
  std::vector<Op> ops;
  for (int i = 0; i < static_cast<int>(Op::Count); ++i) ops.push_back(static_cast<Op>(i));
  return ops;
}

bool should_record(std::initializer_list<const Tensor*> inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t->defined() && t->requires_grad()) return true;
  return false;
}

bool should_record(const std::vector<Tensor>& inputs) {
  if (!t_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// Declared with Tensor, defined here: whether a tensor may change requires_grad is a rule of
// the graph (an op's output may not), and only this floor knows graph nodes.
Tensor& Tensor::requires_grad_(bool enabled) {
  if (const std::shared_ptr<Node>& node = grad_fn())
    throw Error(fmt::format(
        "requires_grad_: the tensor of shape {} is the output of op '{}'; only leaf tensors can "
        "change requires_grad (use detach() for a new leaf)",
        shape_str(shape()), op_name(node->op)));
  if (enabled && !is_floating(dtype()))
    throw Error(
        fmt::format("requires_grad_: only float32 and float64 tensors can require "
                    "gradients, this one is {}",
                    dtype_name(dtype())));
  impl_->requires_grad = enabled;
  return *this;
}

Tensor record(Op op, Tensor output, std::vector<Tensor> inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->op = op;
  node->needs_grad.reserve(inputs.size());
  for (const Tensor& input : inputs)
    node->needs_grad.push_back(input.defined() && input.requires_grad());
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  node->output_shape = output.shape();
  output.impl()->grad_fn = std::move(node);
  output.impl()->requires_grad = true;
  return output;
}

}  // namespace lathe
