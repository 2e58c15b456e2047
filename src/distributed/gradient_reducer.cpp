// GradientReducer: bucketed, overlapped summing of gradients across processes.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "lathe/distributed.h"
#include "lathe/error.h"

namespace lathe {

GradientReducer::GradientReducer(ProcessGroup& group, std::vector<Tensor> parameters,
                                 std::size_t bucket_bytes)
    : group_(group), parameters_(std::move(parameters)) {
  const std::size_t count = parameters_.size();
  bucket_of_.resize(count);
  ready_.assign(count, false);
  Bucket bucket;
  std::size_t values = 0;
  // Reverse order: backward produces the last layers' gradients first.
  for (std::size_t k = count; k-- > 0;) {
    const Tensor& parameter = parameters_[k];
    if (parameter.dtype() != DType::Float32)
      throw Error(fmt::format(
          "data-parallel training: parameter {} is {}; only float32 parameters are supported", k,
          dtype_name(parameter.dtype())));
    if (!index_of_.emplace(parameter.impl(), k).second)
      throw Error(fmt::format("data-parallel training: parameter {} is listed twice", k));
    const auto numel = static_cast<std::size_t>(parameter.numel());
    if (!bucket.parameters.empty() && (values + numel) * sizeof(float) > bucket_bytes) {
      bucket.values.resize(values);
      buckets_.push_back(std::move(bucket));
      bucket = Bucket();
      values = 0;
    }
    bucket_of_[k] = buckets_.size();
    bucket.parameters.push_back(k);
    bucket.offsets.push_back(values);
    values += numel;
  }
  if (!bucket.parameters.empty()) {
    bucket.values.resize(values);
    buckets_.push_back(std::move(bucket));
  }
}

void GradientReducer::begin_step(double weight) {
  weight_ = weight;
}

void GradientReducer::gradient_ready(const Tensor& leaf) {
  const auto found = index_of_.find(leaf.impl());
  if (found == index_of_.end() || ready_[found->second]) return;  // not ours, or told already
  ready_[found->second] = true;
  ++buckets_[bucket_of_[found->second]].ready;
  start_ready_buckets();
  // MPI moves a non-blocking reduction along only inside MPI calls.
  for (std::size_t b = 0; b < next_to_start_; ++b) group_.test(buckets_[b].ticket);
}

// Buckets start strictly in index order, the same on every process, as MPI requires of
// collectives; a bucket that fills early waits for the ones before it.
void GradientReducer::start_ready_buckets() {
  while (next_to_start_ < buckets_.size() &&
         buckets_[next_to_start_].ready == buckets_[next_to_start_].parameters.size()) {
    Bucket& bucket = buckets_[next_to_start_++];
    copy_in(bucket);
    // The last bucket has no backward work left to overlap with, and a blocking reduction is
    // cheaper than a non-blocking one (measured: docs/distributed.md).
    if (next_to_start_ == buckets_.size())
      group_.allreduce_sum(bucket.values.data(), bucket.values.size());
    else
      bucket.ticket = group_.start_allreduce_sum(bucket.values.data(), bucket.values.size());
  }
}

void GradientReducer::copy_in(Bucket& bucket) {
  const auto weight = static_cast<float>(weight_);
  for (std::size_t i = 0; i < bucket.parameters.size(); ++i) {
    const Tensor grad = parameters_[bucket.parameters[i]].grad();
    float* out = bucket.values.data() + bucket.offsets[i];
    const auto numel = static_cast<std::size_t>(parameters_[bucket.parameters[i]].numel());
    if (!grad.defined()) {
      std::fill(out, out + numel, 0.0f);
      continue;
    }
    const float* in = grad.data<float>();
    for (std::size_t j = 0; j < numel; ++j) out[j] = in[j] * weight;
  }
}

void GradientReducer::finish_step() {
  for (Bucket& bucket : buckets_) bucket.ready = bucket.parameters.size();
  start_ready_buckets();
  for (Bucket& bucket : buckets_) {
    group_.wait(bucket.ticket);
    for (std::size_t i = 0; i < bucket.parameters.size(); ++i) {
      Tensor& parameter = parameters_[bucket.parameters[i]];
      Tensor grad = parameter.grad();
      if (!grad.defined()) {
        grad = Tensor::empty(parameter.shape());
        parameter.set_grad(grad);
      }
      std::memcpy(grad.data<float>(), bucket.values.data() + bucket.offsets[i],
                  static_cast<std::size_t>(parameter.numel()) * sizeof(float));
    }
    bucket.ready = 0;
    bucket.ticket = -1;
  }
  std::fill(ready_.begin(), ready_.end(), false);
  next_to_start_ = 0;
}

}  // namespace lathe
