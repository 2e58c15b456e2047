#pragma once
// Dynamic batching for one model: a bounded queue of requests and one worker thread that runs
// them in batches. The worker waits for the first request, then up to max_queue_delay (counted
// from that request's arrival) for enough to fill max_batch_size examples, concatenates their
// inputs into one tensor, runs one forward and hands each request its own rows.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "src/serve/metrics.h"
#include "src/serve/model_slot.h"

namespace lathe::serve {

using Clock = std::chrono::steady_clock;

struct JobResult {
  int status = 200;  // otherwise `error` says why
  std::string error;
  std::vector<float> outputs;  // rows * the model's output_size(), row-major
};

struct InferenceJob {
  // The version the request was checked against; one that answers .../infer.
  std::shared_ptr<const ServedModel> model;
  std::vector<float> inputs;  // rows * its features()
  std::int64_t rows = 0;
  Clock::time_point enqueued;
  // Gets the answer, once: from the batcher, or earlier from whoever gives up on it (a timeout).
  std::function<void(JobResult)> on_answer;

  // false when the job was answered already.
  bool answer(JobResult result) {
    if (answered_.exchange(true)) return false;
    on_answer(std::move(result));
    return true;
  }
  bool answered() const { return answered_.load(); }

 private:
  std::atomic<bool> answered_{false};
};

struct BatchingOptions {
  std::int64_t max_batch_size = 64;
  std::chrono::microseconds max_queue_delay{0};
  std::int64_t max_queue = 1024;
  bool parallel_forward = false;  // false: each batch runs on the worker thread alone
};

class Batcher {
 public:
  Batcher(std::string model_name, BatchingOptions options, Metrics& metrics,
          std::function<void(std::string_view)> log);
  ~Batcher();  // stop()
  Batcher(const Batcher&) = delete;
  Batcher& operator=(const Batcher&) = delete;

  enum class Submitted { Queued, QueueFull, Stopped };
  Submitted submit(std::shared_ptr<InferenceJob> job);

  // Finishes the batch in progress, answers what is still queued with 503 and joins the worker.
  void stop();

 private:
  void run();
  std::vector<std::shared_ptr<InferenceJob>> next_batch();
  void execute(const std::vector<std::shared_ptr<InferenceJob>>& batch);
  void update_depth_locked();

  const std::string model_name_;
  const BatchingOptions options_;
  Metrics& metrics_;
  std::function<void(std::string_view)> log_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::shared_ptr<InferenceJob>> queue_;
  std::int64_t queued_rows_ = 0;
  bool stopping_ = false;
  std::once_flag stop_once_;
  std::thread worker_;
};

}  // namespace lathe::serve
