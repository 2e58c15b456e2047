#pragma once
// Reverse-mode automatic differentiation. Every differentiable op, when any input requires a
// gradient and grad mode is on, records a Node: its op, its inputs, and a closure that maps the
// gradient of its output to the gradients of its inputs. Tensor::backward() walks the nodes in
// reverse topological order. The closures capture only detached tensors, so the graph has no
// cycles, and it is released after backward unless retain_graph is asked for.
#include <functional>
#include <memory>
#include <vector>

#include "lathe/tensor.h"

namespace lathe {

// Every differentiable op has one entry here. The gradcheck test walks this list: an op without
// a gradcheck entry fails the suite, and an op cannot record a node without an entry.
// clang-format off
#define LATHE_DIFFERENTIABLE_OPS(X) \
  X(Add, "add") \
  X(Sub, "sub") \
  X(Mul, "mul") \
  X(Div, "div") \
  X(Neg, "neg") \
  X(Exp, "exp") \
  X(Log, "log") \
  X(Pow, "pow") \
  X(PowScalar, "pow_scalar") \
  X(Sqrt, "sqrt") \
  X(Abs, "abs") \
  X(Clamp, "clamp") \
  X(Matmul, "matmul") \
  X(Linear, "linear") \
  X(Conv2d, "conv2d") \
  X(MaxPool2d, "max_pool2d") \
  X(AvgPool2d, "avg_pool2d") \
  X(BatchNorm, "batch_norm") \
  X(BatchNormRelu, "batch_norm_relu") \
  X(BatchNormReluMaxPool2d, "batch_norm_relu_max_pool2d") \
  X(LayerNorm, "layer_norm") \
  X(CausalAttention, "causal_attention") \
  X(Sum, "sum") \
  X(Mean, "mean") \
  X(Max, "max") \
  X(Reshape, "reshape") \
  X(Permute, "permute") \
  X(Slice, "slice") \
  X(Concat, "concat") \
  X(IndexSelect, "index_select") \
  X(Gather, "gather") \
  X(Relu, "relu") \
  X(LeakyRelu, "leaky_relu") \
  X(Sigmoid, "sigmoid") \
  X(Tanh, "tanh") \
  X(Gelu, "gelu") \
  X(GeluTanh, "gelu_tanh") \
  X(Softmax, "softmax") \
  X(LogSoftmax, "log_softmax") \
  X(MseLoss, "mse_loss") \
  X(CrossEntropy, "cross_entropy") \
  X(NllLoss, "nll_loss") \
  X(BinaryCrossEntropyWithLogits, "binary_cross_entropy_with_logits")
// clang-format on

enum class Op {
#define LATHE_OP_ENUM(id, name) id,
  LATHE_DIFFERENTIABLE_OPS(LATHE_OP_ENUM)
#undef LATHE_OP_ENUM
      Count
};

const char* op_name(Op op);
std::vector<Op> all_differentiable_ops();

// Maps the gradient of the node's output to one gradient per input. needs_grad[i] says whether
// input i wants one; the closure may leave the others undefined.
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output,
                                                     const std::vector<bool>& needs_grad)>;

struct Node {
  Op op;
  std::vector<Tensor> inputs;
  std::vector<bool> needs_grad;
  BackwardFn backward;
  Shape output_shape;
  bool released = false;
};

// Grad mode: on by default, per thread.
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Told by backward when a leaf's gradient is complete: every path from the output to that leaf
// has been accumulated into leaf.grad() during this backward. Data-parallel training starts
// reducing a bucket of gradients as soon as all of its leaves are ready, while backward goes on.
class GradientListener {
 public:
  virtual ~GradientListener() = default;
  virtual void gradient_ready(const Tensor& leaf) = 0;
};

// Installs `listener` for the backward passes this thread runs while the guard lives.
class GradientListenerGuard {
 public:
  explicit GradientListenerGuard(GradientListener& listener);
  ~GradientListenerGuard();
  GradientListenerGuard(const GradientListenerGuard&) = delete;
  GradientListenerGuard& operator=(const GradientListenerGuard&) = delete;

 private:
  GradientListener* previous_;
};
GradientListener* current_gradient_listener();  // for the engine; null when none is installed

// For op implementations: true when the op must record a node for these inputs.
bool should_record(std::initializer_list<const Tensor*> inputs);
bool should_record(const std::vector<Tensor>& inputs);
// Attaches a node to `output` (which must be fresh) and returns it.
Tensor record(Op op, Tensor output, std::vector<Tensor> inputs, BackwardFn backward);

}  // namespace lathe
