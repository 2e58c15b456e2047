#pragma once
// Internal: one training batch computed in shards, one per pool thread at the same time. Each
// shard runs forward, loss and backward on its own copy of the model, rebuilt through the layer
// registry, whose parameters share the model's storage but keep their own gradients; the
// gradients are then summed into the model's in shard order, so the result does not depend on
// thread timing. The threads meet once per step instead of at each of the step's kernels, whose
// hand-offs cost more than the kernels on 2 cores (docs/PERFORMANCE.md).
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "lathe/autograd.h"
#include "lathe/data.h"
#include "lathe/nn.h"
#include "lathe/train.h"

namespace lathe::detail {

class ShardedModel {
 public:
  // `shards` computations of `model` (the first on the model itself). With dropout, each shard
  // draws its masks from its own generator, seeded from the default one at every call.
  ShardedModel(Module& model, std::int64_t shards);

  // Why `model` cannot be computed in shards: it has buffers (batch norm's running statistics
  // would be updated by every shard at once), or the registry cannot rebuild it. Null if it can.
  static std::optional<std::string> why_not_shardable(const Module& model);

  std::int64_t shards() const { return static_cast<std::int64_t>(replicas_.size()) + 1; }

  // The mean loss of `batch` (rows split into contiguous shards, each weighted by its share of
  // the rows), times `scale`, with its gradients added to the model's parameters. Returns the
  // unscaled loss. `listener` hears the model's gradients as backward produces them; only when
  // the batch runs as one shard (otherwise they are complete only after the sum).
  double loss_backward(const Batch& batch, const LossFunction& loss, double scale,
                       GradientListener* listener);

 private:
  Module& model_;
  std::vector<std::shared_ptr<Module>> replicas_;
};

}  // namespace lathe::detail
