#pragma once
// The numbers behind GET /metrics, written in the Prometheus text format (version 0.0.4).
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "lathe/serve.h"

namespace lathe::serve {

// A Prometheus histogram with fixed upper bounds; not thread-safe on its own.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  // The _bucket, _sum and _count lines of `name` with `labels` (`model="m"`).
  void write(std::string& out, std::string_view name, std::string_view labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<std::int64_t> counts_;  // per bound, not cumulative; one more for +Inf
  double sum_ = 0;
  std::int64_t count_ = 0;
};

// Why an infer or generate request failed, for lathe_inference_request_failure_total and
// lathe_generate_request_failure_total {reason=...}.
enum class FailureReason {
  BadRequest,
  NotReady,
  QueueFull,
  Timeout,
  Internal,
  ShuttingDown,
  ClientDisconnected,  // a streamed generation whose client went away
};

class Metrics {
 public:
  // The endpoint label of a request path: "infer", "generate", "model_metadata", ...
  static std::string_view endpoint_of(std::string_view method, std::string_view path);

  void add_model(const std::string& model);  // before any of the model calls below

  void record_http(std::string_view endpoint, int status);
  void record_infer_success(const std::string& model);
  void record_infer_failure(const std::string& model, FailureReason reason);
  // A generate request answered in full, or not; `tokens` were sampled either way.
  void record_generate_success(const std::string& model, std::int64_t tokens);
  void record_generate_failure(const std::string& model, FailureReason reason,
                               std::int64_t tokens = 0);
  // One forward of `examples` rows from `requests` requests: the time each waited in the queue
  // and the time the forward took.
  void record_batch(const std::string& model, std::int64_t examples,
                    const std::vector<double>& queue_seconds, double compute_seconds);
  void record_reload(const std::string& model, bool success);
  void set_model_version(const std::string& model, std::int64_t version);
  void set_queue_depth(const std::string& model, std::int64_t depth);

  ModelCounters counters(const std::string& model) const;
  std::string text() const;

 private:
  struct PerModel {
    std::int64_t inference_count = 0, execution_count = 0, success = 0;
    std::map<FailureReason, std::int64_t> failures;
    std::int64_t generate_success = 0, generated_tokens = 0;
    std::map<FailureReason, std::int64_t> generate_failures;
    std::int64_t reload_success = 0, reload_failure = 0;
    std::int64_t version = 0, queue_depth = 0;
    Histogram queue_seconds, compute_seconds, batch_size;
    PerModel();
  };

  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, std::int64_t> http_;  // (endpoint, status) -> count
  std::map<std::string, PerModel> models_;
};

}  // namespace lathe::serve
