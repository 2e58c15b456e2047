// Causal multi-head self-attention, fused: the heads are read from and written to their slices
// of the packed [B, T, 3C] / [B, T, C] rows, so no transposes or head splits are materialized.
// Per (batch, head): S = Q K^T / sqrt(d) (BLAS), a masked softmax of each row, O = P V (BLAS).
// The probabilities P ([B, H, T, T], O(T^2)) are kept for backward, which is four more GEMMs
// and one pass over P: no step is O(T^3) beyond the products themselves. Contexts longer than
// one block (kAttentionBlock) run the blocked form of attention_blocked.cpp instead, whose
// memory grows linearly with T.
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <vector>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/ops/attention_blocked.h"
#include "src/ops/fast_math.h"
#include "src/tensor/blas.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

// exp of a value <= 0: lathe's vectorizable one in float, libm's in double (gradient checks).
inline float exp_nonpositive(float x) {
  return detail::exp_nonpositive(x);
}
inline double exp_nonpositive(double x) {
  return std::exp(x);
}

// Row i of `scores` (T x T) becomes softmax over columns 0..i; the columns after i become 0.
template <class T>
void causal_softmax_rows(T* scores, std::int64_t time) {
  for (std::int64_t i = 0; i < time; ++i) {
    T* row = scores + i * time;
    T top = -std::numeric_limits<T>::infinity();
    for (std::int64_t j = 0; j <= i; ++j) top = std::max(top, row[j]);
    for (std::int64_t j = 0; j <= i; ++j) row[j] = exp_nonpositive(row[j] - top);
    T total = 0;
    for (std::int64_t j = 0; j <= i; ++j) total += row[j];
    const T inverse = T(1) / total;
    for (std::int64_t j = 0; j <= i; ++j) row[j] *= inverse;
    for (std::int64_t j = i + 1; j < time; ++j) row[j] = 0;
  }
}

}  // namespace

namespace detail {

AttentionGeometry attention_geometry(const Tensor& qkv, std::int64_t n_head) {
  require_floating("causal_attention", qkv);
  if (qkv.dim() != 3 || qkv.size(2) % 3 != 0)
    throw Error(
        fmt::format("causal_attention: qkv must be [B, T, 3C], got {}", shape_str(qkv.shape())));
  const std::int64_t width = qkv.size(2) / 3;
  if (n_head < 1 || width % n_head != 0)
    throw Error(fmt::format("causal_attention: {} heads do not divide the width {} of qkv {}",
                            n_head, width, shape_str(qkv.shape())));
  return {qkv.size(0), qkv.size(1), width, n_head, width / n_head};
}

}  // namespace detail

Tensor causal_attention(const Tensor& qkv, std::int64_t n_head) {
  if (qkv.dim() == 3 && !detail::attention_keeps_probabilities(qkv.size(1)))
    return detail::causal_attention_blocked(qkv, n_head, detail::kAttentionBlock);
  return detail::causal_attention_keeping_probabilities(qkv, n_head);
}

Tensor detail::causal_attention_keeping_probabilities(const Tensor& qkv, std::int64_t n_head) {
  const detail::AttentionGeometry g = detail::attention_geometry(qkv, n_head);
  const std::int64_t tasks = g.batch * g.heads, T2 = g.time * g.time;
  Tensor out = Tensor::empty({g.batch, g.time, g.width}, qkv.dtype());
  Tensor probabilities = Tensor::empty({g.batch, g.heads, g.time, g.time}, qkv.dtype());
  detail::dispatch_floating(qkv.dtype(), "causal_attention", [&](auto tag) {
    using T = decltype(tag);
    const T* base = qkv.data<T>();
    T* o = out.data<T>();
    T* p = probabilities.data<T>();
    const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(g.head_width)));
    detail::SingleThreadedBlas blas_on_each_pool_thread;
    parallel_for(tasks, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t task = begin; task < end; ++task) {
        const std::int64_t b = task / g.heads, h = task % g.heads;
        const T* q = base + g.query(b, h);
        const T* k = q + g.width;
        const T* v = q + 2 * g.width;
        T* pt = p + task * T2;
        detail::gemm<T>(false, true, g.time, g.time, g.head_width, scale, q, g.qkv_row(), k,
                        g.qkv_row(), T(0), pt, g.time);
        causal_softmax_rows(pt, g.time);
        detail::gemm<T>(false, false, g.time, g.head_width, g.time, T(1), pt, g.time, v,
                        g.qkv_row(), T(0), o + g.output(b, h), g.width);
      }
    });
  });
  if (!should_record({&qkv})) return out;
  return record(
      Op::CausalAttention, out, {qkv},
      [qkv_saved = qkv.detach(), probabilities, g](const Tensor& grad, const std::vector<bool>&) {
        Tensor dqkv = Tensor::empty(qkv_saved.shape(), grad.dtype());
        detail::dispatch_floating(grad.dtype(), "causal_attention backward", [&](auto tag) {
          using T = decltype(tag);
          const T* base = qkv_saved.data<T>();
          const T* p = probabilities.data<T>();
          const T* dout = grad.data<T>();
          T* dbase = dqkv.data<T>();
          const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(g.head_width)));
          const std::int64_t T2 = g.time * g.time;
          detail::SingleThreadedBlas blas_on_each_pool_thread;
          parallel_for(g.batch * g.heads, 1, [&](std::int64_t begin, std::int64_t end) {
            std::vector<T> ds(static_cast<std::size_t>(T2));
            for (std::int64_t task = begin; task < end; ++task) {
              const std::int64_t b = task / g.heads, h = task % g.heads;
              const T* q = base + g.query(b, h);
              const T* k = q + g.width;
              const T* v = q + 2 * g.width;
              T* dq = dbase + g.query(b, h);
              T* dk = dq + g.width;
              T* dv = dq + 2 * g.width;
              const T* pt = p + task * T2;
              const T* dot = dout + g.output(b, h);
              // dP = dO V^T, then dS = P * (dP - rowsum(P * dP)), times the score scale.
              detail::gemm<T>(false, true, g.time, g.time, g.head_width, T(1), dot, g.width, v,
                              g.qkv_row(), T(0), ds.data(), g.time);
              for (std::int64_t i = 0; i < g.time; ++i) {
                const T* pr = pt + i * g.time;
                T* dr = ds.data() + i * g.time;
                T weighted = 0;
                for (std::int64_t j = 0; j <= i; ++j) weighted += pr[j] * dr[j];
                for (std::int64_t j = 0; j <= i; ++j) dr[j] = pr[j] * (dr[j] - weighted) * scale;
                for (std::int64_t j = i + 1; j < g.time; ++j) dr[j] = 0;
              }
              detail::gemm<T>(false, false, g.time, g.head_width, g.time, T(1), ds.data(), g.time,
                              k, g.qkv_row(), T(0), dq, g.qkv_row());  // dQ = dS K
              detail::gemm<T>(true, false, g.time, g.head_width, g.time, T(1), ds.data(), g.time, q,
                              g.qkv_row(), T(0), dk, g.qkv_row());  // dK = dS^T Q
              detail::gemm<T>(true, false, g.time, g.head_width, g.time, T(1), pt, g.time, dot,
                              g.width, T(0), dv, g.qkv_row());  // dV = P^T dO
            }
          });
        });
        return std::vector<Tensor>{dqkv};
      });
}

}  // namespace lathe
