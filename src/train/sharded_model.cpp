#include "src/train/sharded_model.h"

#include <fmt/format.h>

#include <optional>
#include <utility>

#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/tensor/blas.h"

namespace lathe::detail {
namespace {

// Points each of `replica`'s parameters at the data of the model's parameter of that index (its
// storage and dtype: a spec does not say the dtype, so a float64 model's replica is built float32
// and becomes float64 here).
void share_weights(const std::vector<NamedTensor>& model, const std::vector<NamedTensor>& replica) {
  for (std::size_t p = 0; p < model.size(); ++p) {
    replica[p].tensor.impl()->storage = model[p].tensor.impl()->storage;
    replica[p].tensor.impl()->dtype = model[p].tensor.dtype();
  }
}

// Adds `from`'s gradient to `to`'s and drops `from`'s.
void move_gradient(Tensor from, Tensor to) {
  const Tensor grad = from.grad();
  if (!grad.defined()) return;
  NoGradGuard no_grad;
  to.set_grad(to.grad().defined() ? to.grad() + grad : grad.clone());
  from.zero_grad();
}

}  // namespace

std::optional<std::string> ShardedModel::why_not_shardable(const Module& model) {
  if (!model.named_buffers().empty())
    return fmt::format(
        "the model has buffers ({} first), such as batch norm's running statistics, which every "
        "shard would update at once",
        model.named_buffers().front().name);
  if (auto why = why_not_rebuildable(model)) return *why;
  return std::nullopt;
}

ShardedModel::ShardedModel(Module& model, std::int64_t shards) : model_(model) {
  if (shards < 1) throw Error(fmt::format("sharded training: {} shards, need at least 1", shards));
  if (shards == 1) return;
  if (auto why = why_not_shardable(model))
    throw Error(fmt::format("sharded training ({} shards): {}", shards, *why));
  Generator throwaway(0);  // replicas' own initial weights are replaced by the model's
  const std::vector<NamedTensor> parameters = model.named_parameters();
  for (std::int64_t i = 1; i < shards; ++i) {
    replicas_.push_back(make_layer(model.spec(), throwaway));
    const std::vector<NamedTensor> own = replicas_.back()->named_parameters();
    for (std::size_t p = 0; p < parameters.size(); ++p)
      if (own.size() != parameters.size() || own[p].name != parameters[p].name ||
          own[p].tensor.shape() != parameters[p].tensor.shape())
        throw Error(
            fmt::format("sharded training: a replica of '{}' rebuilt from its spec() has "
                        "other parameters than the model (at '{}')",
                        model.type(), parameters[p].name));
    share_weights(parameters, own);  // frees the replica's own
  }
}

double ShardedModel::loss_backward(const Batch& batch, const LossFunction& loss, double scale,
                                   GradientListener* listener) {
  const std::int64_t rows = batch.targets.size(0);
  const std::int64_t parts = std::min(shards(), rows);
  if (parts <= 1) {
    std::optional<GradientListenerGuard> listening;
    if (listener) listening.emplace(*listener);
    Tensor value = loss(model_(batch.inputs), batch.targets);
    const double result = value.item();
    if (scale != 1.0) value = value * scale;
    value.backward();
    return result;
  }
  const std::vector<NamedTensor> parameters = model_.named_parameters();
  std::vector<std::vector<NamedTensor>> replica_parameters;
  for (std::int64_t i = 1; i < parts; ++i) {
    Module& replica = *replicas_[static_cast<std::size_t>(i - 1)];
    replica.train(model_.is_training());
    replica_parameters.push_back(replica.named_parameters());
    // Again every step: the model's storage may have been replaced since (a resume, a load).
    share_weights(parameters, replica_parameters.back());
  }
  // Shard `part` is rows [begin, end) and weighs (end - begin) / rows of the batch's mean loss.
  const auto rows_of = [&](std::int64_t part) {
    return std::pair{part * rows / parts, (part + 1) * rows / parts};
  };
  const auto share_of = [&](std::int64_t part) {
    const auto [begin, end] = rows_of(part);
    return static_cast<double>(end - begin) / static_cast<double>(rows);
  };
  std::vector<double> losses(static_cast<std::size_t>(parts));
  // Dropout draws from the default generator: each shard gets its own stream, seeded here in
  // shard order from the process-wide one, so a run stays reproducible (and resumable).
  std::vector<std::uint64_t> seeds;
  for (std::int64_t part = 0; part < parts; ++part) seeds.push_back(default_generator().next_u64());
  const auto run_shard = [&](std::int64_t part) {
    const auto [begin, end] = rows_of(part);
    Module& model = part == 0 ? model_ : *replicas_[static_cast<std::size_t>(part - 1)];
    Generator stream(seeds[static_cast<std::size_t>(part)]);
    DefaultGeneratorScope own_stream(stream);
    Tensor value =
        loss(model(slice(batch.inputs, 0, begin, end)), slice(batch.targets, 0, begin, end));
    losses[static_cast<std::size_t>(part)] = value.item();
    const double weight = scale * share_of(part);
    if (weight != 1.0) value = value * weight;
    value.backward();
  };
  {
    SingleThreadedBlas blas_on_each_shard_thread;
    parallel_for(parts, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t part = begin; part < end; ++part) run_shard(part);
    });
  }
  double total = 0;
  for (std::int64_t part = 0; part < parts; ++part) {
    total += losses[static_cast<std::size_t>(part)] * share_of(part);
    if (part > 0)
      for (std::size_t p = 0; p < parameters.size(); ++p)
        move_gradient(replica_parameters[static_cast<std::size_t>(part - 1)][p].tensor,
                      parameters[p].tensor);
  }
  return total;
}

}  // namespace lathe::detail
