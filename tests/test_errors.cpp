// Malformed calls raise lathe::Error with a message naming the op and the shapes; none aborts.
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

TEST(Errors, MatmulInnerDimensionsNameOpAndShapes) {
  const Tensor a = Tensor::zeros({64, 784}), b = Tensor::zeros({128, 10});
  EXPECT_EQ(error_of([&] { matmul(a, b); }),
            "matmul: [64,784] x [128,10]: inner dimensions 784 and 128 differ");
  EXPECT_EQ(error_of([&] { matmul(a, b, false, true); }),
            "matmul: [64,784] x [128,10]^T: inner dimensions 784 and 10 differ");
  EXPECT_EQ(error_of([&] {
              matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({5, 4, 2}));
            }),
            "matmul: [2,3,4] x [5,4,2]: batch sizes 2 and 5 differ");
  EXPECT_NE(error_of([&] {
              matmul(Tensor::zeros({3}), Tensor::zeros({3, 2}));
            }).find("expected [M,K] x [K,N]"),
            std::string::npos);
}

TEST(Errors, LinearShapes) {
  EXPECT_EQ(error_of([] {
              linear(Tensor::zeros({64, 784}), Tensor::zeros({128, 785}));
            }),
            "linear: input [64,784] and weight [128,785]: expected [M,K] and [N,K]");
  EXPECT_EQ(error_of([] {
              linear(Tensor::zeros({2, 3}), Tensor::zeros({4, 3}), Tensor::zeros({3}));
            }),
            "linear: bias [3] does not match weight [4,3] (expected [4])");
}

TEST(Errors, WrongDtypes) {
  const Tensor f32 = Tensor::zeros({2}), f64 = Tensor::zeros({2}, DType::Float64);
  EXPECT_EQ(error_of([&] { add(f32, f64); }), "add: dtypes differ: float32 [2] and float64 [2]");
  const Tensor labels = Tensor::from_indices({1, 2}, {2});
  EXPECT_EQ(error_of([&] { exp(labels); }),
            "exp: dtype int64 is not supported; expected float32 or float64");
  EXPECT_EQ(error_of([&] {
              matmul(Tensor::zeros({2, 2}), Tensor::zeros({2, 2}, DType::Float64));
            }),
            "matmul: dtypes differ: float32 [2,2] and float64 [2,2]");
  EXPECT_EQ(error_of([&] {
              cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2}));
            }),
            "cross_entropy: targets must be int64 class indices, got float32");
  EXPECT_EQ(error_of([&] {
              Tensor x = labels;
              x.requires_grad_();
            }),
            "requires_grad_: only float32 and float64 tensors can require gradients, this one is "
            "int64");
  EXPECT_EQ(error_of([&] { f32.data<double>(); }),
            "tensor data: requested float64 but the tensor is float32");
}

TEST(Errors, BackwardOnNonScalarWithoutUpstream) {
  Tensor x = Tensor::zeros({3, 4});
  x.requires_grad_();
  const Tensor y = x * 2.0;
  EXPECT_EQ(error_of([&] { y.backward(); }),
            "backward: the output of shape [3,4] is not a scalar; pass an upstream gradient of "
            "that shape");
  EXPECT_EQ(error_of([&] {
              y.backward(Tensor::zeros({4, 3}));
            }),
            "backward: upstream gradient float32 [4,3] does not match the output float32 [3,4]");
  EXPECT_EQ(error_of([] { Tensor::zeros({2}).backward(); }),
            "backward: the tensor of shape [2] does not require a gradient and has no graph "
            "behind it");
}

TEST(Errors, ShapesAndAxes) {
  const Tensor a = Tensor::zeros({2, 3});
  EXPECT_EQ(error_of([&] { add(a, Tensor::zeros({4})); }),
            "add: shapes [2,3] and [4] cannot be broadcast (axis 1: 3 vs 4)");
  EXPECT_EQ(error_of([&] { sum(a, {2}); }),
            "sum: axis 2 is out of range for shape [2,3] (allowed -2..1)");
  EXPECT_EQ(error_of([&] { sum(a, {1, -1}); }), "sum: axis -1 is listed twice for shape [2,3]");
  EXPECT_EQ(error_of([&] {
              reshape(a, {4, 2});
            }),
            "reshape: cannot reshape [2,3] (6 elements) into [4,2]");
  EXPECT_EQ(error_of([&] {
              reshape(a, {-1, -1});
            }),
            "reshape: [2,3] -> [-1,-1]: only one axis may be -1");
  EXPECT_EQ(error_of([&] {
              permute(a, {0, 0});
            }),
            "permute: order [0,0] is not a permutation of the 2 axes of [2,3]");
  EXPECT_EQ(error_of([&] {
              concat({a, Tensor::zeros({2, 4})}, 0);
            }),
            "concat: tensor 1 has shape [2,4], incompatible with [2,3] along axis 0");
  EXPECT_EQ(error_of([&] {
              index_select(a, 1, Tensor::from_indices({0, 3}, {2}));
            }),
            "index_select: index 3 at position 1 is out of range for axis 1 of shape [2,3] "
            "(allowed 0..2)");
  EXPECT_EQ(error_of([&] { slice(a, 0, 0, 1, 0); }), "slice: step must be positive, got 0");
  EXPECT_EQ(error_of([&] {
              mse_loss(a, Tensor::zeros({3, 2}));
            }),
            "mse_loss: prediction shape [2,3] and target shape [3,2] differ");
  EXPECT_EQ(error_of([&] {
              max(Tensor::zeros({0, 2}), 0);
            }),
            "max: axis 0 of shape [0,2] is empty");
}

TEST(Errors, LossTargets) {
  const Tensor logits = Tensor::zeros({2, 3});
  EXPECT_EQ(error_of([&] {
              cross_entropy(logits, Tensor::from_indices({0, 3}, {2}));
            }),
            "cross_entropy: target 3 at position 1 is out of range for 3 classes");
  EXPECT_EQ(error_of([&] { cross_entropy(logits, Tensor::from_indices({0}, {1})); }),
            "cross_entropy: scores [2,3] need targets of shape [2], got [1]");
  EXPECT_EQ(error_of([&] { nll_loss(Tensor::zeros({3}), Tensor::from_indices({0}, {1})); }),
            "nll_loss: expected scores of shape [N,C], got [3]");
  EXPECT_EQ(error_of([&] {
              cross_entropy(logits, Tensor::from_indices({0, 1}, {2}), Tensor::ones({2}));
            }),
            "cross_entropy: class weights must have shape [3], got [2]");
  for (const auto& [eps, text] : {std::pair{-0.1, "-0.1"}, {1.0, "1"}, {std::nan(""), "nan"}})
    EXPECT_EQ(error_of([&, eps = eps] {  // (clang 14 cannot capture a structured binding)
                cross_entropy(logits, Tensor::from_indices({0, 1}, {2}), Tensor(), eps);
              }),
              std::string("cross_entropy: label_smoothing must be in [0, 1), got ") + text);
}

TEST(Errors, TensorAccessAndFactories) {
  Tensor t = Tensor::zeros({2, 2});
  EXPECT_EQ(error_of([&] {
              t.at({2, 0});
            }),
            "tensor index: index 2 is out of range for axis 0 of shape [2,2]");
  EXPECT_EQ(error_of([&] { t.at({0}); }), "tensor index: 1 indices given for shape [2,2]");
  EXPECT_EQ(error_of([&] { t.item(); }),
            "tensor item: shape [2,2] has 4 elements, expected exactly one");
  EXPECT_EQ(error_of([] { Tensor::zeros({2, -1}); }), "tensor: negative size in shape [2,-1]");
  EXPECT_EQ(error_of([] {
              Tensor::zeros({1LL << 40, 1LL << 40});
            }),
            "tensor: shape [1099511627776,1099511627776] is too large");
  EXPECT_EQ(error_of([] {
              Tensor::from_vector({1, 2, 3}, {2, 2});
            }),
            "tensor from_vector: 3 values given for shape [2,2] (4 elements)");
  EXPECT_EQ(error_of([] { Tensor().shape(); }), "tensor: use of an undefined tensor");
  Tensor x = Tensor::zeros({2});
  x.requires_grad_();
  EXPECT_EQ(error_of([&] { (x * 2.0).requires_grad_(false); }),
            "requires_grad_: the tensor of shape [2] is the output of op 'mul'; only leaf tensors "
            "can change requires_grad (use detach() for a new leaf)");
}

}  // namespace
}  // namespace lathe
