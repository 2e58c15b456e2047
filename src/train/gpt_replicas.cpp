#include "src/train/gpt_replicas.h"

#include <fmt/format.h>

#include <optional>
#include <utility>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/tensor/blas.h"

namespace lathe::detail {
namespace {

// Points each of `replica`'s parameters at the storage of the model's parameter of that index.
void share_weights(const std::vector<NamedTensor>& model, const std::vector<NamedTensor>& replica) {
  for (std::size_t p = 0; p < model.size(); ++p)
    replica[p].tensor.impl()->storage = model[p].tensor.impl()->storage;
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

ShardedGPT::ShardedGPT(GPT& model, std::int64_t shards) : model_(model) {
  if (shards < 1) throw Error(fmt::format("ShardedGPT: {} shards, need at least 1", shards));
  Generator throwaway(0);  // replicas' own initial weights are replaced by the model's
  const DType dtype = model.token_embedding().dtype();
  const std::vector<NamedTensor> parameters = model.named_parameters();
  for (std::int64_t i = 1; i < shards; ++i) {
    replicas_.push_back(std::make_unique<GPT>(model.config(), throwaway, dtype));
    share_weights(parameters, replicas_.back()->named_parameters());  // frees the replica's own
  }
}

double ShardedGPT::loss_backward(const Tensor& tokens, const Tensor& targets, double scale) {
  const std::int64_t rows = tokens.size(0);
  const std::int64_t parts = std::min(shards(), rows);
  const std::vector<NamedTensor> parameters = model_.named_parameters();
  std::vector<std::vector<NamedTensor>> replica_parameters;
  for (std::int64_t i = 1; i < parts; ++i) {
    GPT& replica = *replicas_[static_cast<std::size_t>(i - 1)];
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
  if (parts > 1 && model_.config().dropout > 0)
    for (std::int64_t part = 0; part < parts; ++part)
      seeds.push_back(default_generator().next_u64());
  const auto run_shard = [&](std::int64_t part) {
    const auto [begin, end] = rows_of(part);
    GPT& model = part == 0 ? model_ : *replicas_[static_cast<std::size_t>(part - 1)];
    Generator stream(seeds.empty() ? 0 : seeds[static_cast<std::size_t>(part)]);
    std::optional<DefaultGeneratorScope> own_stream;
    if (!seeds.empty()) own_stream.emplace(stream);
    Tensor loss = parts == 1
                      ? model.loss(tokens, targets)
                      : model.loss(slice(tokens, 0, begin, end), slice(targets, 0, begin, end));
    losses[static_cast<std::size_t>(part)] = loss.item();
    const double weight = scale * share_of(part);
    if (weight != 1.0) loss = loss * weight;
    loss.backward();
  };
  if (parts == 1) {
    run_shard(0);
  } else {
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
