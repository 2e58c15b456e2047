#pragma once
// Internal: causal self-attention whose memory grows linearly with the context (issue 28, item 3).
// causal_attention (attention.cpp) keeps the [B, H, T, T] probabilities for backward; beyond
// kAttentionBlock positions it runs this form instead, which processes queries and keys in blocks
// of `block`, keeps a running row maximum and sum (an online softmax, as FlashAttention does),
// saves only each row's log-sum-exp ([B, H, T]) and recomputes the probabilities of each block
// in backward. Blocks wholly above the diagonal are skipped.
#include <cstdint>

#include "lathe/tensor.h"

namespace lathe::detail {

// Contexts up to this many positions keep the probabilities (one block: nothing to save, and
// backward needs no recomputation).
constexpr std::int64_t kAttentionBlock = 64;

// Whether causal_attention keeps the probabilities at context `time` (else it runs in blocks).
inline bool attention_keeps_probabilities(std::int64_t time) {
  return time <= kAttentionBlock;
}

struct AttentionGeometry {
  std::int64_t batch, time, width, heads, head_width;
  std::int64_t qkv_row() const { return 3 * width; }
  // Offsets of head h of batch b's first query (its key and value follow at +width, +2 width),
  // and of its output slice.
  std::int64_t query(std::int64_t b, std::int64_t h) const {
    return b * time * qkv_row() + h * head_width;
  }
  std::int64_t output(std::int64_t b, std::int64_t h) const {
    return b * time * width + h * head_width;
  }
};

// Checks qkv ([B, T, 3C], floating) against n_head; throws lathe::Error naming the shapes.
AttentionGeometry attention_geometry(const Tensor& qkv, std::int64_t n_head);

// The form that keeps the [B, H, T, T] probabilities for backward (causal_attention's for
// contexts up to kAttentionBlock), at any context: for comparisons.
Tensor causal_attention_keeping_probabilities(const Tensor& qkv, std::int64_t n_head);

// causal_attention computed in blocks of `block` queries and keys (>= 1); the same result and
// gradients within float rounding.
Tensor causal_attention_blocked(const Tensor& qkv, std::int64_t n_head, std::int64_t block);

}  // namespace lathe::detail
