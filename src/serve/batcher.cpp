// The batching worker of one model.
#include "src/serve/batcher.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <optional>

#include "lathe/parallel.h"

namespace lathe::serve {
namespace {

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

void answer(InferenceJob& job, JobResult result) {
  try {
    job.answer(std::move(result));
  } catch (...) {
    // Answering failed (out of memory, say); the request's own guard answers 500.
  }
}

}  // namespace

Batcher::Batcher(std::string model_name, BatchingOptions options, Metrics& metrics,
                 std::function<void(std::string_view)> log)
    : model_name_(std::move(model_name)),
      options_(options),
      metrics_(metrics),
      log_(std::move(log)) {
  worker_ = std::thread([this] { run(); });
}

Batcher::~Batcher() {
  stop();
}

Batcher::Submitted Batcher::submit(std::shared_ptr<InferenceJob> job) {
  bool wake = false;
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return Submitted::Stopped;
    if (static_cast<std::int64_t>(queue_.size()) >= options_.max_queue) return Submitted::QueueFull;
    // The worker only needs waking for the first request (it waits for one) and for the one
    // that fills a batch (it waits for the delay otherwise): a wake-up per request would cost
    // a context switch each on a busy machine.
    const bool was_empty = queue_.empty();
    queued_rows_ += job->rows;
    queue_.push_back(std::move(job));
    wake = was_empty || queued_rows_ >= options_.max_batch_size;
    update_depth_locked();
  }
  if (wake) wake_.notify_one();
  return Submitted::Queued;
}

void Batcher::stop() {
  std::call_once(stop_once_, [this] {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    worker_.join();
    std::deque<std::shared_ptr<InferenceJob>> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(queue_);
      queued_rows_ = 0;
      update_depth_locked();
    }
    for (const auto& job : left) answer(*job, {503, "the server is shutting down", {}});
  });
}

void Batcher::update_depth_locked() {
  metrics_.set_queue_depth(model_name_, static_cast<std::int64_t>(queue_.size()));
}

void Batcher::run() {
  std::optional<SerialRegion> on_this_thread_only;
  if (!options_.parallel_forward) on_this_thread_only.emplace();
  for (;;) {
    const std::vector<std::shared_ptr<InferenceJob>> batch = next_batch();
    if (batch.empty()) return;  // stopping
    try {
      execute(batch);
    } catch (...) {
      for (const auto& job : batch) answer(*job, {500, "inference failed", {}});
    }
  }
}

std::vector<std::shared_ptr<InferenceJob>> Batcher::next_batch() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (stopping_) return {};
    // Requests already answered (timed out) are dropped rather than computed.
    while (!queue_.empty() && queue_.front()->answered()) {
      queued_rows_ -= queue_.front()->rows;
      queue_.pop_front();
    }
    if (queue_.empty()) {
      update_depth_locked();
      continue;
    }
    const Clock::time_point deadline = queue_.front()->enqueued + options_.max_queue_delay;
    while (!stopping_ && queued_rows_ < options_.max_batch_size && Clock::now() < deadline)
      wake_.wait_until(lock, deadline);
    if (stopping_) return {};

    // The batch: requests from the front, all checked against the same model version, up to
    // max_batch_size examples (a larger request runs alone).
    std::vector<std::shared_ptr<InferenceJob>> batch;
    std::int64_t rows = 0;
    const auto model = queue_.front()->model;
    while (!queue_.empty()) {
      const auto& job = queue_.front();
      if (!job->answered()) {
        if (job->model != model) break;
        if (!batch.empty() && rows + job->rows > options_.max_batch_size) break;
        rows += job->rows;
        batch.push_back(job);
      }
      queued_rows_ -= job->rows;
      queue_.pop_front();
    }
    update_depth_locked();
    if (!batch.empty()) return batch;
  }
}

void Batcher::execute(const std::vector<std::shared_ptr<InferenceJob>>& batch) {
  const Clock::time_point start = Clock::now();
  const InferenceModel& model = *batch.front()->model->inference();
  std::vector<double> queue_seconds;
  std::int64_t rows = 0;
  for (const auto& job : batch) {
    queue_seconds.push_back(seconds_between(job->enqueued, start));
    rows += job->rows;
  }
  std::vector<JobResult> results(batch.size());
  try {
    Tensor inputs = Tensor::empty({rows, model.features()});
    float* at = inputs.data<float>();
    for (const auto& job : batch) {
      std::memcpy(at, job->inputs.data(), job->inputs.size() * sizeof(float));
      at += job->inputs.size();
    }
    Tensor outputs = model.predict(inputs);
    if (outputs.dtype() != DType::Float32) outputs = outputs.to(DType::Float32);
    if (outputs.numel() != rows * model.output_size())
      throw Error(fmt::format("the model returned shape {} for {} examples",
                              shape_str(outputs.shape()), rows));
    const float* from = outputs.data<float>();
    for (std::size_t i = 0; i < batch.size(); ++i) {
      const std::int64_t count = batch[i]->rows * model.output_size();
      results[i].outputs.assign(from, from + count);
      from += count;
    }
  } catch (const std::exception& e) {
    log_(fmt::format("model '{}' version {}: a batch of {} examples failed: {}", model.name,
                     model.version, rows, e.what()));
    for (JobResult& result : results) {
      result.status = 500;
      result.error = fmt::format("inference failed: {}", e.what());
      result.outputs.clear();
    }
  }
  metrics_.record_batch(model_name_, rows, queue_seconds, seconds_between(start, Clock::now()));
  for (std::size_t i = 0; i < batch.size(); ++i) answer(*batch[i], std::move(results[i]));
}

}  // namespace lathe::serve
