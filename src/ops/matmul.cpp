// Matrix products through BLAS. Transposed operands are passed to GEMM as flags, never copied.
#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/kernels.h"
#include "src/tensor/blas.h"

namespace lathe {
namespace {

std::string operand_str(const Tensor& t, bool transposed) {
  return shape_str(t.shape()) + (transposed ? "^T" : "");
}

// Rows and columns of the matrix an operand stands for, after its transpose flag.
std::pair<std::int64_t, std::int64_t> matrix_dims(const Tensor& t, bool transposed) {
  const auto rows = t.size(-2), cols = t.size(-1);
  return transposed ? std::pair{cols, rows} : std::pair{rows, cols};
}

// Multiply-adds of op(A) op(B), all batches.
std::int64_t product_macs(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  const std::int64_t batch = a.dim() == 3 ? a.size(0) : 1;
  const auto a_dims = matrix_dims(a, ta);
  return batch * a_dims.first * a_dims.second * matrix_dims(b, tb).second;
}

Tensor gemm_forward(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  // Not a structured binding: clang before 16 cannot capture those in the lambda below.
  const auto a_dims = matrix_dims(a, ta);
  const std::int64_t m = a_dims.first, k = a_dims.second;
  const auto n = matrix_dims(b, tb).second;
  const std::int64_t batch = a.dim() == 3 ? a.size(0) : 1;
  Shape shape = a.dim() == 3 ? Shape{batch, m, n} : Shape{m, n};
  Tensor out = Tensor::empty(shape, a.dtype());
  detail::dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    const std::int64_t lda = a.size(-1), ldb = b.size(-1);
    const std::int64_t stride_b = b.dim() == 3 ? k * n : 0;
    for (std::int64_t i = 0; i < batch; ++i) {
      if (k == 0) {
        std::fill(pc + i * m * n, pc + (i + 1) * m * n, T(0));
        continue;
      }
      detail::gemm<T>(ta, tb, m, n, k, T(1), pa + i * m * k, lda, pb + i * stride_b, ldb, T(0),
                      pc + i * m * n, n);
    }
  });
  return out;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  detail::require_floating("matmul", a);
  detail::require_floating("matmul", b);
  detail::require_same_dtype("matmul", a, b);
  const auto rank_error = [&] {
    return Error(
        fmt::format("matmul: {} x {}: expected [M,K] x [K,N], [B,M,K] x [B,K,N] or "
                    "[B,M,K] x [K,N]",
                    shape_str(a.shape()), shape_str(b.shape())));
  };
  if (a.dim() < 2 || a.dim() > 3 || b.dim() < 2 || b.dim() > 3 || (a.dim() == 2 && b.dim() == 3))
    throw rank_error();
  const auto ka = matrix_dims(a, ta).second, kb = matrix_dims(b, tb).first;
  if (ka != kb)
    throw Error(fmt::format("matmul: {} x {}: inner dimensions {} and {} differ",
                            operand_str(a, ta), operand_str(b, tb), ka, kb));
  if (a.dim() == 3 && b.dim() == 3 && a.size(0) != b.size(0))
    throw Error(fmt::format("matmul: {} x {}: batch sizes {} and {} differ", shape_str(a.shape()),
                            shape_str(b.shape()), a.size(0), b.size(0)));
  if (a.dim() == 3 && b.dim() == 2) {
    if (ta) {
      throw Error(
          fmt::format("matmul: {}^T x {}: a transposed batch against one matrix is not "
                      "supported; transpose the batch first",
                      shape_str(a.shape()), shape_str(b.shape())));
    }
    // One matrix against a batch: fold the batch into the rows, a single GEMM.
    const auto batch = a.size(0), m = a.size(1);
    Tensor folded = matmul(reshape(a, {batch * m, a.size(2)}), b, false, tb);
    return reshape(folded, {batch, m, folded.size(1)});
  }

  Tensor out = gemm_forward(a, b, ta, tb);
  if (!should_record({&a, &b})) return out;
  return record(
      Op::Matmul, out, {a, b},
      [a = a.detach(), b = b.detach(), ta, tb](const Tensor& g, const std::vector<bool>& needs) {
        // C = op(A) op(B). For each flag combination the gradients are again single
        // GEMMs with flags: e.g. no flags: dA = G B^T, dB = A^T G.
        Tensor ga, gb;
        const std::int64_t macs = needs[0] && needs[1] ? product_macs(a, b, ta, tb) : 0;
        detail::run_products(
            macs,
            [&] {
              if (needs[0]) ga = ta ? matmul(b, g, tb, true) : matmul(g, b, false, !tb);
            },
            [&] {
              if (needs[1]) gb = tb ? matmul(g, a, true, ta) : matmul(a, g, !ta, false);
            });
        return std::vector<Tensor>{ga, gb};
      });
}

Tensor linear(const Tensor& input, const Tensor& weight, const Tensor& bias, WeightLayout layout) {
  detail::require_floating("linear", input);
  detail::require_floating("linear", weight);
  detail::require_same_dtype("linear", input, weight);
  const bool in_out = layout == WeightLayout::InOut;
  const std::int64_t in_axis = in_out ? 0 : 1;
  if (input.dim() != 2 || weight.dim() != 2 || input.size(1) != weight.size(in_axis))
    throw Error(fmt::format("linear: input {} and weight {}: expected [M,K] and {}",
                            shape_str(input.shape()), shape_str(weight.shape()),
                            in_out ? "[K,N]" : "[N,K]"));
  const std::int64_t m = input.size(0), k = input.size(1), n = weight.size(1 - in_axis);
  if (bias.defined()) {
    detail::require_same_dtype("linear", input, bias);
    if (bias.shape() != Shape{n})
      throw Error(fmt::format("linear: bias {} does not match weight {} (expected [{}])",
                              shape_str(bias.shape()), shape_str(weight.shape()), n));
  }
  Tensor out = Tensor::empty({m, n}, input.dtype());
  detail::dispatch_floating(input.dtype(), "linear", [&](auto tag) {
    using T = decltype(tag);
    T* c = out.data<T>();
    if (bias.defined()) {
      for (std::int64_t i = 0; i < m; ++i) std::copy_n(bias.data<T>(), n, c + i * n);
    } else {
      std::fill_n(c, m * n, T(0));
    }
    if (k > 0)
      detail::gemm<T>(false, !in_out, m, n, k, T(1), input.data<T>(), k, weight.data<T>(),
                      in_out ? n : k, T(1), c, n);
  });
  if (!should_record({&input, &weight, &bias})) return out;
  return record(Op::Linear, out, {input, weight, bias},
                [x = input.detach(), w = weight.detach(), in_out](const Tensor& g,
                                                                  const std::vector<bool>& needs) {
                  // out = x W^T + b: dx = g W, dW = g^T x; with W stored [in, out] (out = x W + b):
                  // dx = g W^T, dW = x^T g. db = column sums of g.
                  Tensor dx, dw;
                  const std::int64_t macs = needs[0] && needs[1] ? x.numel() * g.size(1) : 0;
                  detail::run_products(
                      macs, [&] { dx = needs[0] ? matmul(g, w, false, in_out) : Tensor(); },
                      [&] {
                        if (needs[1])
                          dw = in_out ? matmul(x, g, true, false) : matmul(g, x, true, false);
                      });
                  return std::vector<Tensor>{dx, dw, needs[2] ? sum(g, {0}) : Tensor()};
                });
}

}  // namespace lathe
