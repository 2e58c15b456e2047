#pragma once
// The differentiable ops. Each records its backward when an input requires a gradient (see
// autograd.h). Binary element-wise ops broadcast like NumPy. Axes may be negative. Errors are
// lathe::Error naming the op and the shapes involved.
#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "lathe/tensor.h"

namespace lathe {

// Element-wise (src/ops/elementwise.cpp).
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor pow(const Tensor& base, const Tensor& exponent);
Tensor pow(const Tensor& base, double exponent);
Tensor sqrt(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor clamp(const Tensor& a, std::optional<double> min, std::optional<double> max);

// Matrix products (src/ops/matmul.cpp). a: [M,K] or [B,M,K]; b: [K,N] or [B,K,N]. A transpose
// flag reads that operand transposed (its last two axes swapped) without copying it.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// How a linear layer's weight is stored: [out, in] as PyTorch stores it (the product is x W^T),
// or [in, out] (x W).
enum class WeightLayout { OutIn, InOut };

// input [M,K] times the weight ([N,K] transposed, or [K,N] with InOut), plus bias [N] if
// defined: one GEMM whose output starts as the bias rows (no separate broadcast add). Linear
// layers use it.
Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              WeightLayout layout = WeightLayout::OutIn);

// Convolution and pooling on [N, C, H, W] (src/ops/conv.cpp); (height, width) pairs.
struct Conv2dOptions {
  std::array<std::int64_t, 2> stride{1, 1};
  std::array<std::int64_t, 2> padding{0, 0};  // zeros on both sides
  std::array<std::int64_t, 2> dilation{1, 1};
  std::int64_t groups = 1;
};
// Output length of a window sliding over `in` values: conv2d's OH and OW, and pooling's (dilation
// 1); 0 where the window is longer than the padded input.
std::int64_t conv_output_size(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                              std::int64_t padding, std::int64_t dilation = 1);
// weight [O, C / groups, KH, KW], bias [O] if defined -> [N, O, OH, OW].
Tensor conv2d(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});
// relu(conv2d(...)) with the ReLU applied as each image's output is written, one pass over the
// output fewer (the inference plan folds conv + batch norm + relu into it). Where gradients are
// recorded it is the two ops, conv2d then relu.
Tensor conv2d_relu(const Tensor& input, const Tensor& weight, const Tensor& bias = Tensor(),
                   const Conv2dOptions& options = {});
struct Pool2dOptions {
  std::array<std::int64_t, 2> kernel{2, 2};
  std::array<std::int64_t, 2> stride{2, 2};
  std::array<std::int64_t, 2> padding{0, 0};  // at most half the kernel
};
Tensor max_pool2d(const Tensor& input, const Pool2dOptions& options);  // padding never wins
Tensor avg_pool2d(const Tensor& input, const Pool2dOptions& options);  // padding counts as 0

// Batch normalization over axis 1 of [N, C] or [N, C, ...] (src/ops/normalization.cpp), as
// PyTorch's F.batch_norm. Training normalizes with the batch's mean and biased variance and, when
// the running tensors are defined, updates them in place (momentum; unbiased variance);
// evaluation normalizes with the running statistics. weight/bias [C] may be undefined.
Tensor batch_norm(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                  const Tensor& weight, const Tensor& bias, bool training, double momentum = 0.1,
                  double eps = 1e-5);
// relu(batch_norm(...)) with the ReLU applied in batch norm's passes, forward and backward:
// the same values and gradients without a pass of its own over the tensor (Sequential fuses a
// batch norm layer followed by a relu layer into it).
Tensor batch_norm_relu(const Tensor& input, const Tensor& running_mean, const Tensor& running_var,
                       const Tensor& weight, const Tensor& bias, bool training,
                       double momentum = 0.1, double eps = 1e-5);
// max_pool2d(batch_norm_relu(...)) with a 2x2 window, stride 2, input [N, C, H, W]: the same
// values and gradients, bit for bit, with each plane normalized and pooled, and its gradient
// unpooled, in cache; neither the normalized tensor nor its gradient is written out whole
// (Sequential fuses a batch_norm2d, relu, max_pool2d (kernel 2, stride 2, no padding) run of
// layers into it).
Tensor batch_norm_relu_max_pool2d(const Tensor& input, const Tensor& running_mean,
                                  const Tensor& running_var, const Tensor& weight,
                                  const Tensor& bias, bool training, double momentum = 0.1,
                                  double eps = 1e-5);

// Layer normalization over the last axis (src/ops/layer_norm.cpp), as F.layer_norm with
// normalized_shape [C]: biased variance; weight and bias [C] may be undefined.
Tensor layer_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// Causal multi-head self-attention (src/ops/attention.cpp). qkv [B, T, 3C] holds each
// position's query, key and value side by side, each split into n_head slices of C / n_head.
// Output [B, T, C]: per head, softmax(q k^T / sqrt(C / n_head)) v over positions <= t, heads
// side by side (what PyTorch computes with view, transpose, masked_fill and softmax). Memory:
// the [B, n_head, T, T] probabilities are kept for backward.
Tensor causal_attention(const Tensor& qkv, std::int64_t n_head);

// Reductions (src/ops/reduce.cpp). An empty axes list reduces over every axis.
Tensor sum(const Tensor& a, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<std::int64_t>& axes = {}, bool keepdim = false);
Tensor max(const Tensor& a, std::int64_t axis, bool keepdim = false);
Tensor argmax(const Tensor& a, std::int64_t axis, bool keepdim = false);  // int64, no gradient
// Sums `a` down to `shape` (the inverse of broadcasting `shape` up to a.shape()).
Tensor sum_to(const Tensor& a, const Shape& shape);

// Shape ops (src/ops/shape.cpp). reshape shares storage; the others copy.
Tensor reshape(const Tensor& a, const Shape& shape);  // one axis may be -1
Tensor permute(const Tensor& a, const std::vector<std::int64_t>& order);
Tensor transpose(const Tensor& a, std::int64_t axis0, std::int64_t axis1);
// Python-style slice a[start:end:step] along axis; start/end may be negative, are clamped.
Tensor slice(const Tensor& a, std::int64_t axis, std::int64_t start, std::int64_t end,
             std::int64_t step = 1);
Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis);
Tensor index_select(const Tensor& a, std::int64_t axis,
                    const Tensor& indices);  // indices: int64 1-D
Tensor gather(const Tensor& a, std::int64_t axis,
              const Tensor& indices);  // indices: int64, a's rank

// Activations (src/ops/activation.cpp).
Tensor relu(const Tensor& a);
Tensor leaky_relu(const Tensor& a, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
enum class GeluApproximation { None, Tanh };
Tensor gelu(const Tensor& a, GeluApproximation approximation = GeluApproximation::None);
Tensor softmax(const Tensor& a, std::int64_t axis);
Tensor log_softmax(const Tensor& a, std::int64_t axis);

// Losses (src/ops/loss.cpp), each reduced to the mean as PyTorch's default does.
Tensor mse_loss(const Tensor& prediction, const Tensor& target);
// logits [N,C], targets int64 [N]. With class weights the mean is sum(w[y] * loss) / sum(w[y]).
// label_smoothing eps in [0, 1), as PyTorch 1.13: (1 - eps) * that loss + eps / C * the sum over
// classes c of w[c] * -log_softmax[i,c], summed over i and divided by the same sum(w[y]) (the
// target distribution (1 - eps) one-hot + eps / C without weights). eps = 0 is the plain loss.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets,
                     const Tensor& class_weights = Tensor(), double label_smoothing = 0.0);
Tensor nll_loss(const Tensor& log_probs, const Tensor& targets,
                const Tensor& class_weights = Tensor());
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets);

}  // namespace lathe
