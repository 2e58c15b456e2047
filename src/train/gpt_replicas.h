#pragma once
// Internal: one training batch computed in shards, one per pool thread at the same time. Each
// shard runs forward and backward on its own copy of the GPT whose parameters share the model's
// storage but keep their own gradients; the gradients are then summed into the model's in a
// fixed order. A 2-thread step no longer hands each of its ~300 kernels to the pool: each thread
// runs a whole model on its rows with single-threaded BLAS, and the threads meet once per step.
#include <memory>
#include <vector>

#include "lathe/gpt.h"
#include "lathe/tensor.h"

namespace lathe::detail {

class ShardedGPT {
 public:
  // `shards` computations of `model` (the first is the model itself). With dropout, each shard
  // draws its masks from its own generator, seeded from the default one at every call.
  ShardedGPT(GPT& model, std::int64_t shards);

  std::int64_t shards() const { return static_cast<std::int64_t>(replicas_.size()) + 1; }

  // The mean loss of predicting targets [B, T] from tokens [B, T], times `scale`, with its
  // gradients added to the model's parameters. Rows are split into contiguous shards, each
  // weighted by its share of the rows. Returns the unscaled loss.
  double loss_backward(const Tensor& tokens, const Tensor& targets, double scale);

 private:
  GPT& model_;
  std::vector<std::unique_ptr<GPT>> replicas_;
};

}  // namespace lathe::detail
