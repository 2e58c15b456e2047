#include <fmt/format.h>

#include "lathe/autograd.h"
#include "lathe/error.h"

namespace lathe {
namespace {
thread_local bool t_grad_enabled = true;
thread_local GradientListener* t_gradient_listener = nullptr;
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
