#pragma once
// `lathe serve`: model bundles behind an HTTP/1.1 server that speaks the Open Inference Protocol
// v2 (the REST API of KServe and Triton), with dynamic batching, limits on every request,
// Prometheus metrics and hot reload; language-model bundles generate text (streamed as
// Server-Sent Events on request). docs/deploy/serve.md describes the endpoints.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/inference.h"

namespace lathe {

// One bundle to serve, under `name` in the URLs (/v2/models/{name}/infer).
struct ServedBundle {
  std::string name;
  std::filesystem::path path;
};

// The model name a bundle gets when none is given: the file name without its extension.
std::string default_model_name(const std::filesystem::path& bundle_path);

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: an ephemeral port, see InferenceServer::port()
  // HTTP event threads (0: one per CPU). Each serves its share of the open connections without
  // waiting on any of them: a request waiting for its batch or a client that stalls holds no
  // thread. A connection beyond max_connections waits, not accepted, until one closes.
  int http_threads = 0;
  int max_connections = 4096;

  // Dynamic batching, per model: requests queued together run as one forward of up to
  // max_batch_size examples. A worker that finds a request waits up to max_queue_delay for more
  // (0: runs whatever is queued at once, which still batches under load: requests pile up while
  // a batch computes). A request with more examples than max_batch_size runs alone. The default 0
  // answered a lone client in 0.17 ms rather than 0.68 ms (with 500 us), and 32 busy ones faster
  // too (docs/deploy/serve.md, the load test).
  std::int64_t max_batch_size = 64;
  std::chrono::microseconds max_queue_delay{0};
  std::int64_t max_queue = 1024;  // requests waiting per model; more are answered 503

  // Limits on one request.
  std::size_t max_body_bytes = 64u << 20;            // 413 beyond (after decompression)
  std::chrono::milliseconds request_timeout{30000};  // 504 when no answer by then
  std::size_t max_json_depth = 32;                   // 400 beyond
  std::int64_t max_elements = 1 << 24;               // numbers in one request; 400 beyond
  // Language models (POST /v2/models/{name}/generate): the most tokens one request may ask for
  // (400 beyond). The prompt may hold at most max_elements bytes.
  std::int64_t max_generate_tokens = 4096;

  // When set, every endpoint except /v2/health/* requires `Authorization: Bearer KEY` or
  // `X-API-Key: KEY` (401 otherwise).
  std::string api_key;

  // Reload a bundle whose file changed (size, modification time or inode), checked this often.
  bool watch = true;
  std::chrono::milliseconds watch_interval{1000};
  // A reload (SIGHUP or --watch) whose bundle has another task, other inputs or other outputs
  // than the version being served is refused and logged, and the old version keeps serving,
  // unless this is set: clients written against the old signature would break.
  bool allow_signature_change = false;

  // OpenBLAS threads while the server runs (restored by stop()); 0 leaves them as they are.
  // Parallelism comes from batching and the HTTP threads: OpenBLAS's own threads spin while they
  // wait and take the cores the HTTP threads need (measured in docs/deploy/serve.md).
  int blas_threads = 1;

  // Whether one batch's forward may be split over lathe's kernel pool (all cores, or
  // LATHE_NUM_THREADS). Off, each model's worker runs its batches on its own thread: under load
  // the HTTP threads need the other cores, and the 784-128-64-10 MLP served a median 10% more
  // requests so, in 6 of 7 alternating runs (docs/deploy/serve.md). On for large models with
  // few concurrent clients.
  bool parallel_forward = false;

  // How classifiers and regression models run (lathe::InferencePrecision; int8 refuses a model
  // without an inference plan at load). Language models always run in float32.
  InferencePrecision precision = InferencePrecision::Float32;

  // Where log lines go (one line per call, no trailing newline). Default: stderr.
  std::function<void(std::string_view)> log;
};

// Request and batch counters of one model, as /metrics reports them.
struct ModelCounters {
  std::int64_t inference_count = 0;         // examples answered
  std::int64_t execution_count = 0;         // forwards run (batches)
  std::int64_t success_count = 0;           // infer requests answered 200
  std::int64_t failure_count = 0;           // infer requests answered otherwise
  std::int64_t generate_success_count = 0;  // generate requests answered in full
  std::int64_t generate_failure_count = 0;  // refused, timed out, or the client went away
  std::int64_t generated_tokens = 0;        // tokens sampled by generate requests
  std::int64_t reload_successes = 0;        // reloads after the first load
  std::int64_t reload_failures = 0;
};

class InferenceServer {
 public:
  // Checks the names (unique, URL-safe) and options; loads nothing yet.
  InferenceServer(std::vector<ServedBundle> bundles, ServeOptions options);
  ~InferenceServer();  // stop()
  InferenceServer(const InferenceServer&) = delete;
  InferenceServer& operator=(const InferenceServer&) = delete;

  // Binds and starts answering on background threads; returns the port. Until load_models()
  // has run, /v2/health/ready and the models answer 503.
  int start();
  // Loads every bundle and starts its batching worker and the file watcher. Throws lathe::Error
  // naming the bundle when one cannot be loaded.
  void load_models();
  // Reloads every bundle from disk (what SIGHUP does). A bundle that fails to load is logged and
  // its previous version kept. Returns the number that failed.
  int reload_all();
  // Stops accepting connections, lets requests in flight finish, then stops the workers.
  // Idempotent.
  void stop();

  int port() const;
  bool ready() const;
  // The current version of a model ("1" after the first load, +1 per reload); empty when not
  // loaded.
  std::string model_version(const std::string& name) const;
  ModelCounters counters(const std::string& name) const;
  std::string metrics_text() const;  // the body of GET /metrics

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// The process's shutdown and reload signals. From construction on, SIGTERM, SIGINT and SIGHUP
// are caught (the handlers only write the signal number to a pipe, so one arriving while models
// load is kept, not lost or fatal) and SIGPIPE is ignored; the destructor restores the previous
// handlers. One at a time per process.
class ServeSignals {
 public:
  ServeSignals();
  ~ServeSignals();
  ServeSignals(const ServeSignals&) = delete;
  ServeSignals& operator=(const ServeSignals&) = delete;

  // Runs until SIGTERM or SIGINT, then stops the server (drain) and returns. SIGHUP reloads
  // every bundle.
  void serve_until_stopped(InferenceServer& server);

 private:
  int read_fd_ = -1, write_fd_ = -1;
};

}  // namespace lathe
