// Metrics: counters and histograms under one mutex (a few updates per request; the forward
// dominates), rendered on demand as Prometheus text.
#include "src/serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <optional>

#include "src/serve/model_path.h"

namespace lathe::serve {
namespace {

// Seconds, 50 us to 10 s.
std::vector<double> latency_bounds() {
  return {0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,    0.1,    0.25,    0.5,    1,     2.5,    5,     10};
}

std::vector<double> batch_bounds() {
  return {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
}

std::string_view reason_label(FailureReason reason) {
  switch (reason) {
    case FailureReason::BadRequest:
      return "bad_request";
    case FailureReason::NotReady:
      return "not_ready";
    case FailureReason::QueueFull:
      return "queue_full";
    case FailureReason::Timeout:
      return "timeout";
    case FailureReason::Internal:
      return "internal";
    case FailureReason::ShuttingDown:
      return "shutting_down";
    case FailureReason::ClientDisconnected:
      return "client_disconnected";
  }
  return "internal";
}

// A label value: backslash, double quote and newline escaped.
std::string escape_label(std::string_view value) {
  std::string out;
  for (const char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void header(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++counts_[bucket];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, std::string_view name, std::string_view labels) const {
  std::int64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    out += fmt::format("{}_bucket{{{},le=\"{}\"}} {}\n", name, labels, bounds_[i], cumulative);
  }
  out += fmt::format("{}_bucket{{{},le=\"+Inf\"}} {}\n", name, labels, count_);
  out += fmt::format("{}_sum{{{}}} {}\n", name, labels, sum_);
  out += fmt::format("{}_count{{{}}} {}\n", name, labels, count_);
}

Metrics::PerModel::PerModel()
    : queue_seconds(latency_bounds()),
      compute_seconds(latency_bounds()),
      batch_size(batch_bounds()) {}

std::string_view Metrics::endpoint_of(std::string_view method, std::string_view path) {
  if (path == "/metrics") return "metrics";
  if (path == "/v2") return "server_metadata";
  if (path == "/v2/health/live") return "health_live";
  if (path == "/v2/health/ready") return "health_ready";
  const std::optional<ModelPath> model = parse_model_path(path);
  if (!model) return "other";
  if (model->action.empty()) return "model_metadata";
  if (model->action == "ready") return "model_ready";
  if (method != "POST") return "other";
  return model->action == "infer" ? "infer" : "generate";
}

void Metrics::add_model(const std::string& model) {
  std::lock_guard lock(mutex_);
  models_.try_emplace(model);
}

void Metrics::record_http(std::string_view endpoint, int status) {
  std::lock_guard lock(mutex_);
  ++http_[{std::string(endpoint), status}];
}

void Metrics::record_infer_success(const std::string& model) {
  std::lock_guard lock(mutex_);
  ++models_.at(model).success;
}

void Metrics::record_infer_failure(const std::string& model, FailureReason reason) {
  std::lock_guard lock(mutex_);
  ++models_.at(model).failures[reason];
}

void Metrics::record_generate_success(const std::string& model, std::int64_t tokens) {
  std::lock_guard lock(mutex_);
  PerModel& m = models_.at(model);
  ++m.generate_success;
  m.generated_tokens += tokens;
}

void Metrics::record_generate_failure(const std::string& model, FailureReason reason,
                                      std::int64_t tokens) {
  std::lock_guard lock(mutex_);
  PerModel& m = models_.at(model);
  ++m.generate_failures[reason];
  m.generated_tokens += tokens;
}

void Metrics::record_batch(const std::string& model, std::int64_t examples,
                           const std::vector<double>& queue_seconds, double compute_seconds) {
  std::lock_guard lock(mutex_);
  PerModel& m = models_.at(model);
  m.inference_count += examples;
  ++m.execution_count;
  for (const double seconds : queue_seconds) m.queue_seconds.observe(seconds);
  m.compute_seconds.observe(compute_seconds);
  m.batch_size.observe(static_cast<double>(examples));
}

void Metrics::record_reload(const std::string& model, bool success) {
  std::lock_guard lock(mutex_);
  ++(success ? models_.at(model).reload_success : models_.at(model).reload_failure);
}

void Metrics::set_model_version(const std::string& model, std::int64_t version) {
  std::lock_guard lock(mutex_);
  models_.at(model).version = version;
}

void Metrics::set_queue_depth(const std::string& model, std::int64_t depth) {
  std::lock_guard lock(mutex_);
  models_.at(model).queue_depth = depth;
}

ModelCounters Metrics::counters(const std::string& model) const {
  std::lock_guard lock(mutex_);
  const auto found = models_.find(model);
  if (found == models_.end()) return {};
  const PerModel& m = found->second;
  ModelCounters c;
  c.inference_count = m.inference_count;
  c.execution_count = m.execution_count;
  c.success_count = m.success;
  for (const auto& [reason, count] : m.failures) c.failure_count += count;
  c.generate_success_count = m.generate_success;
  for (const auto& [reason, count] : m.generate_failures) c.generate_failure_count += count;
  c.generated_tokens = m.generated_tokens;
  c.reload_successes = m.reload_success;
  c.reload_failures = m.reload_failure;
  return c;
}

std::string Metrics::text() const {
  std::lock_guard lock(mutex_);
  std::string out;
  header(out, "lathe_http_requests_total", "counter",
         "HTTP requests answered, by endpoint and status code.");
  for (const auto& [key, count] : http_)
    out += fmt::format("lathe_http_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first,
                       key.second, count);

  // One block per metric, one line per model.
  auto per_model = [&](std::string_view name, std::string_view type, std::string_view help,
                       auto value) {
    header(out, name, type, help);
    for (const auto& [model, m] : models_)
      out += fmt::format("{}{{model=\"{}\"}} {}\n", name, escape_label(model), value(m));
  };
  per_model("lathe_inference_request_success_total", "counter", "Infer requests answered 200.",
            [](const PerModel& m) { return m.success; });
  header(out, "lathe_inference_request_failure_total", "counter",
         "Infer requests answered with an error, by reason.");
  for (const auto& [model, m] : models_)
    for (const auto& [reason, count] : m.failures)
      out += fmt::format("lathe_inference_request_failure_total{{model=\"{}\",reason=\"{}\"}} {}\n",
                         escape_label(model), reason_label(reason), count);
  per_model("lathe_generate_request_success_total", "counter",
            "Generate requests answered in full (language models).",
            [](const PerModel& m) { return m.generate_success; });
  header(out, "lathe_generate_request_failure_total", "counter",
         "Generate requests refused or cut short, by reason.");
  for (const auto& [model, m] : models_)
    for (const auto& [reason, count] : m.generate_failures)
      out += fmt::format("lathe_generate_request_failure_total{{model=\"{}\",reason=\"{}\"}} {}\n",
                         escape_label(model), reason_label(reason), count);
  per_model("lathe_generated_tokens_total", "counter",
            "Tokens sampled by generate requests (those cut short included).",
            [](const PerModel& m) { return m.generated_tokens; });
  per_model("lathe_inference_count_total", "counter", "Examples inferred (rows of all batches).",
            [](const PerModel& m) { return m.inference_count; });
  per_model("lathe_inference_exec_count_total", "counter",
            "Batches run: forwards of the model, each over one or more requests.",
            [](const PerModel& m) { return m.execution_count; });
  per_model("lathe_inference_queue_depth", "gauge", "Requests waiting in the batching queue.",
            [](const PerModel& m) { return m.queue_depth; });
  per_model("lathe_model_version", "gauge", "Version now served (1 at start, +1 per reload).",
            [](const PerModel& m) { return m.version; });
  header(out, "lathe_model_reloads_total", "counter",
         "Reloads of a bundle after the first load, by result (a failure keeps the old model).");
  for (const auto& [model, m] : models_) {
    out += fmt::format("lathe_model_reloads_total{{model=\"{}\",result=\"success\"}} {}\n",
                       escape_label(model), m.reload_success);
    out += fmt::format("lathe_model_reloads_total{{model=\"{}\",result=\"failure\"}} {}\n",
                       escape_label(model), m.reload_failure);
  }

  auto histogram = [&](std::string_view name, std::string_view help, auto member) {
    header(out, name, "histogram", help);
    for (const auto& [model, m] : models_)
      (m.*member).write(out, name, fmt::format("model=\"{}\"", escape_label(model)));
  };
  histogram("lathe_inference_queue_seconds",
            "Time from a request entering the batching queue to its batch starting.",
            &PerModel::queue_seconds);
  histogram("lathe_inference_compute_seconds",
            "Time of one batch: assembling inputs, preprocessing, forward, splitting outputs.",
            &PerModel::compute_seconds);
  histogram("lathe_inference_batch_size", "Examples per batch run.", &PerModel::batch_size);
  return out;
}

}  // namespace lathe::serve
