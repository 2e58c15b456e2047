// Blocked causal attention (attention_blocked.h). Per (batch, head) and block of queries i:
//   forward   for each key block j <= i: S = Q_i K_j^T scale, masked on the diagonal block; the
//             row maximum m and sum l are updated online and O_i = O_i exp(m_old - m) + P V_j;
//             at the end O_i /= l and L_i = m + log l is kept.
//   backward  D_i = rowsum(dO_i * O_i); for each key block j <= i: P = exp(S - L_i) recomputed,
//             dP = dO_i V_j^T, dS = P (dP - D_i) scale, dQ_i += dS K_j, dK_j += dS^T Q_i,
//             dV_j += P^T dO_i.
// Scratch per pool thread: two block x block matrices and the rows' running values.
#include <algorithm>
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

namespace lathe::detail {
namespace {

// exp of a value <= 0: lathe's vectorizable one in float, libm's in double (gradient checks).
inline float block_exp(float x) {
  return exp_nonpositive(x);
}
inline double block_exp(double x) {
  return std::exp(x);
}

// The keys query `row` (a position) may see in the key block starting at `first`: columns
// 0..visible-1 of the block.
inline std::int64_t visible_keys(std::int64_t row, std::int64_t first, std::int64_t columns) {
  return std::clamp<std::int64_t>(row - first + 1, 0, columns);
}

template <class T>
void forward_head(const AttentionGeometry& g, std::int64_t block, const T* q, T* o, T* lse,
                  std::vector<T>& s, std::vector<T>& top, std::vector<T>& total) {
  const T* k = q + g.width;
  const T* v = q + 2 * g.width;
  const std::int64_t ld = g.qkv_row(), d = g.head_width;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  for (std::int64_t i0 = 0; i0 < g.time; i0 += block) {
    const std::int64_t rows = std::min(block, g.time - i0);
    T* oi = o + i0 * g.width;
    std::fill(top.begin(), top.begin() + rows, -std::numeric_limits<T>::infinity());
    std::fill(total.begin(), total.begin() + rows, T(0));
    for (std::int64_t r = 0; r < rows; ++r) std::fill_n(oi + r * g.width, d, T(0));
    for (std::int64_t j0 = 0; j0 < i0 + rows; j0 += block) {
      const std::int64_t columns = std::min(block, i0 + rows - j0);
      gemm<T>(false, true, rows, columns, d, scale, q + i0 * ld, ld, k + j0 * ld, ld, T(0),
              s.data(), block);
      for (std::int64_t r = 0; r < rows; ++r) {
        T* row = s.data() + r * block;
        const std::int64_t seen = visible_keys(i0 + r, j0, columns);
        T m = top[r];
        for (std::int64_t c = 0; c < seen; ++c) m = std::max(m, row[c]);
        // The first block always shows a row its own position, so m is finite from there on.
        const T kept = top[r] == -std::numeric_limits<T>::infinity() ? T(0) : block_exp(top[r] - m);
        T sum = 0;
        for (std::int64_t c = 0; c < seen; ++c) sum += row[c] = block_exp(row[c] - m);
        std::fill(row + seen, row + columns, T(0));
        total[r] = total[r] * kept + sum;
        top[r] = m;
        if (kept != T(1))
          for (std::int64_t c = 0; c < d; ++c) oi[r * g.width + c] *= kept;
      }
      gemm<T>(false, false, rows, d, columns, T(1), s.data(), block, v + j0 * ld, ld, T(1), oi,
              g.width);
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      const T inverse = T(1) / total[r];
      for (std::int64_t c = 0; c < d; ++c) oi[r * g.width + c] *= inverse;
      lse[i0 + r] = top[r] + std::log(total[r]);
    }
  }
}

template <class T>
void backward_head(const AttentionGeometry& g, std::int64_t block, const T* q, const T* o,
                   const T* dout, const T* lse, T* dq, std::vector<T>& p, std::vector<T>& ds,
                   std::vector<T>& delta) {
  const T* k = q + g.width;
  const T* v = q + 2 * g.width;
  T* dk = dq + g.width;
  T* dv = dq + 2 * g.width;
  const std::int64_t ld = g.qkv_row(), d = g.head_width;
  const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(d)));
  for (std::int64_t t = 0; t < g.time; ++t) {
    std::fill_n(dq + t * ld, d, T(0));
    std::fill_n(dk + t * ld, d, T(0));
    std::fill_n(dv + t * ld, d, T(0));
    T dot = 0;
    for (std::int64_t c = 0; c < d; ++c) dot += dout[t * g.width + c] * o[t * g.width + c];
    delta[t] = dot;
  }
  for (std::int64_t i0 = 0; i0 < g.time; i0 += block) {
    const std::int64_t rows = std::min(block, g.time - i0);
    const T* qi = q + i0 * ld;
    const T* doi = dout + i0 * g.width;
    for (std::int64_t j0 = 0; j0 < i0 + rows; j0 += block) {
      const std::int64_t columns = std::min(block, i0 + rows - j0);
      gemm<T>(false, true, rows, columns, d, scale, qi, ld, k + j0 * ld, ld, T(0), p.data(), block);
      gemm<T>(false, true, rows, columns, d, T(1), doi, g.width, v + j0 * ld, ld, T(0), ds.data(),
              block);
      for (std::int64_t r = 0; r < rows; ++r) {
        T* pr = p.data() + r * block;
        T* dr = ds.data() + r * block;
        const std::int64_t seen = visible_keys(i0 + r, j0, columns);
        const T l = lse[i0 + r], dl = delta[i0 + r];
        for (std::int64_t c = 0; c < seen; ++c) {
          pr[c] = block_exp(pr[c] - l);
          dr[c] = pr[c] * (dr[c] - dl) * scale;
        }
        std::fill(pr + seen, pr + columns, T(0));
        std::fill(dr + seen, dr + columns, T(0));
      }
      gemm<T>(false, false, rows, d, columns, T(1), ds.data(), block, k + j0 * ld, ld, T(1),
              dq + i0 * ld, ld);  // dQ_i += dS K_j
      gemm<T>(true, false, columns, d, rows, T(1), ds.data(), block, qi, ld, T(1), dk + j0 * ld,
              ld);  // dK_j += dS^T Q_i
      gemm<T>(true, false, columns, d, rows, T(1), p.data(), block, doi, g.width, T(1),
              dv + j0 * ld, ld);  // dV_j += P^T dO_i
    }
  }
}

}  // namespace

Tensor causal_attention_blocked(const Tensor& qkv, std::int64_t n_head, std::int64_t block) {
  const AttentionGeometry g = attention_geometry(qkv, n_head);
  if (block < 1) throw Error("causal_attention: the block must be at least 1");
  const std::int64_t tasks = g.batch * g.heads, tile = block * block;
  Tensor out = Tensor::empty({g.batch, g.time, g.width}, qkv.dtype());
  Tensor lse = Tensor::empty({g.batch, g.heads, g.time}, qkv.dtype());
  dispatch_floating(qkv.dtype(), "causal_attention", [&](auto tag) {
    using T = decltype(tag);
    SingleThreadedBlas blas_on_each_pool_thread;
    parallel_for(tasks, 1, [&](std::int64_t begin, std::int64_t end) {
      std::vector<T> s(static_cast<std::size_t>(tile)), top(block), total(block);
      for (std::int64_t task = begin; task < end; ++task) {
        const std::int64_t b = task / g.heads, h = task % g.heads;
        forward_head<T>(g, block, qkv.data<T>() + g.query(b, h), out.data<T>() + g.output(b, h),
                        lse.data<T>() + task * g.time, s, top, total);
      }
    });
  });
  if (!should_record({&qkv})) return out;
  // The output is kept by its storage only (detach), so the graph holds no cycle through it.
  return record(
      Op::CausalAttention, out, {qkv},
      [qkv_saved = qkv.detach(), out_saved = out.detach(), lse, g, block](
          const Tensor& grad, const std::vector<bool>&) {
        Tensor dqkv = Tensor::empty(qkv_saved.shape(), grad.dtype());
        dispatch_floating(grad.dtype(), "causal_attention backward", [&](auto tag) {
          using T = decltype(tag);
          const Tensor& dout = grad;
          SingleThreadedBlas blas_on_each_pool_thread;
          parallel_for(g.batch * g.heads, 1, [&](std::int64_t begin, std::int64_t end) {
            std::vector<T> p(static_cast<std::size_t>(block * block)), ds(p.size()), delta(g.time);
            for (std::int64_t task = begin; task < end; ++task) {
              const std::int64_t b = task / g.heads, h = task % g.heads;
              backward_head<T>(g, block, qkv_saved.data<T>() + g.query(b, h),
                               out_saved.data<T>() + g.output(b, h),
                               dout.data<T>() + g.output(b, h), lse.data<T>() + task * g.time,
                               dqkv.data<T>() + g.query(b, h), p, ds, delta);
            }
          });
        });
        return std::vector<Tensor>{dqkv};
      });
}

}  // namespace lathe::detail
