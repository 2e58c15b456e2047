// InferenceServer: the models, their batchers, the HTTP server and the file watcher, started and
// stopped in the right order (HTTP drains before the batchers stop, so every request in flight
// gets its answer).
#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <set>
#include <thread>

#include "lathe/error.h"
#include "lathe/serve.h"
#include "src/http/event_server.h"
#include "src/serve/routes.h"
#include "src/tensor/blas.h"

namespace lathe {

using serve::Batcher;
using serve::BatchingOptions;
using serve::ModelEntry;
using serve::ModelSlot;
using serve::PeriodicThread;
using serve::ServedModel;

namespace {

void log_to_stderr(std::string_view line) {
  static std::mutex mutex;
  std::lock_guard lock(mutex);
  std::fprintf(stderr, "lathe serve: %.*s\n", static_cast<int>(line.size()), line.data());
  std::fflush(stderr);
}

void check_options(const ServeOptions& o) {
  auto require = [](bool ok, const std::string& message) {
    if (!ok) throw Error("serve: " + message);
  };
  require(o.port >= 0 && o.port <= 65535, fmt::format("port {} is not in 0..65535", o.port));
  require(o.http_threads >= 0, "--threads must be 0 (one per CPU) or more");
  require(o.max_connections >= o.http_threads,
          "--max-connections must be at least --threads (each thread serves a share of them)");
  require(o.max_batch_size >= 1, "--max-batch-size must be at least 1");
  require(o.max_queue_delay.count() >= 0, "--max-queue-delay-us must be 0 or more");
  require(o.max_queue >= 1, "--max-queue must be at least 1");
  require(o.max_body_bytes >= 1, "--max-body-bytes must be at least 1");
  require(o.request_timeout.count() >= 1, "--request-timeout-ms must be at least 1");
  // The request itself nests 4 deep: {"inputs": [{"data": [...]}]}. The infer body's reader
  // recurses once per level (a few hundred bytes of an HTTP thread's stack each).
  require(o.max_json_depth >= 4 && o.max_json_depth <= 1000, "--max-json-depth must be in 4..1000");
  require(o.max_elements >= 1, "--max-elements must be at least 1");
  require(o.max_generate_tokens >= 1, "--max-generate-tokens must be at least 1");
  require(o.watch_interval.count() >= 1, "the watch interval must be at least 1 ms");
  require(o.blas_threads >= 0, "--blas-threads must be 0 or more");
}

// Letters, digits, '_', '.' and '-', not starting with '.' or '-': safe in a URL path segment
// and in a metric label, and never "." or "..".
bool valid_model_name(const std::string& name) {
  if (name.empty() || name[0] == '.' || name[0] == '-') return false;
  for (const char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  return true;
}

}  // namespace

std::string default_model_name(const std::filesystem::path& bundle_path) {
  return bundle_path.stem().string();
}

struct InferenceServer::Impl {
  serve::ServerState state;
  std::unique_ptr<http::EventServer> http;
  int port = -1;
  std::unique_ptr<PeriodicThread> watcher;
  std::mutex lifecycle_mutex;  // start, load_models and stop
  bool stopped = false;
  int previous_blas_threads = 0;  // to restore at stop; 0: unchanged

  // Loads the bundle again; false (logged, old version kept) when it cannot be loaded.
  bool reload(ModelEntry& entry, const char* why) {
    ModelSlot& slot = *entry.slot;
    const auto before = slot.current();
    try {
      // The log line first: whoever sees the counters move can read why.
      const auto model = slot.load();
      state.log(fmt::format("model '{}' version {} loaded from {} ({}; {})", slot.name(),
                            model->version, slot.path().string(), model->describe(), why));
      state.metrics.record_reload(slot.name(), true);
      state.metrics.set_model_version(slot.name(), model->version);
      return true;
    } catch (const std::exception& e) {
      state.log(fmt::format(
          "error: reloading model '{}' from {} failed ({}): {}; still serving {}", slot.name(),
          slot.path().string(), why, e.what(),
          before ? fmt::format("version {}", before->version) : std::string("nothing")));
      state.metrics.record_reload(slot.name(), false);
      return false;
    }
  }
};

InferenceServer::InferenceServer(std::vector<ServedBundle> bundles, ServeOptions options)
    : impl_(std::make_unique<Impl>()) {
  check_options(options);
  if (bundles.empty()) throw Error("serve: no bundle to serve");
  serve::ServerState& state = impl_->state;
  state.log = options.log ? options.log : log_to_stderr;
  state.options = std::move(options);
  for (ServedBundle& bundle : bundles) {
    if (!valid_model_name(bundle.name))
      throw Error(
          fmt::format("serve: model name '{}' (for {}) must be letters, digits, '_', '.' "
                      "or '-', not starting with '.' or '-'; give one with --name",
                      bundle.name, bundle.path.string()));
    if (state.models.count(bundle.name))
      throw Error(fmt::format("serve: two bundles would be served as '{}'; name them with --name",
                              bundle.name));
    state.metrics.add_model(bundle.name);
    ModelEntry entry;
    entry.slot = std::make_unique<ModelSlot>(bundle.name, bundle.path, state.options.precision,
                                             state.options.allow_signature_change);
    entry.batcher = std::make_unique<Batcher>(
        bundle.name,
        BatchingOptions{state.options.max_batch_size, state.options.max_queue_delay,
                        state.options.max_queue, state.options.parallel_forward},
        state.metrics, state.log);
    state.models.emplace(bundle.name, std::move(entry));
  }
  const ServeOptions& o = state.options;
  const int threads = o.http_threads > 0
                          ? o.http_threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  impl_->http = std::make_unique<http::EventServer>(
      http::EventServerOptions{o.host, o.port, threads, std::max(o.max_connections, threads),
                               o.max_body_bytes, /*idle_timeout_seconds=*/5},
      serve::route_hooks(state));
}

InferenceServer::~InferenceServer() {
  stop();
}

int InferenceServer::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->stopped) throw Error("serve: the server was stopped");
  if (impl_->port >= 0) return impl_->port;
  const ServeOptions& o = impl_->state.options;
  int port = 0;
  try {
    port = impl_->http->start();
  } catch (const std::runtime_error& e) {
    throw Error(fmt::format("serve: {}", e.what()));
  }
  if (o.blas_threads > 0 && detail::blas_threads() != o.blas_threads) {
    impl_->previous_blas_threads = detail::blas_threads();
    detail::set_blas_threads(o.blas_threads);
  }
  impl_->port = port;
  return port;
}

void InferenceServer::load_models() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->stopped) throw Error("serve: the server was stopped");
  serve::ServerState& state = impl_->state;
  for (auto& [name, entry] : state.models) {
    if (entry.slot->current()) continue;
    std::shared_ptr<const ServedModel> model;
    try {
      model = entry.slot->load();
    } catch (const std::exception& e) {
      throw Error(fmt::format("cannot serve model '{}': {}", name, e.what()));
    }
    state.metrics.set_model_version(name, model->version);
    state.log(fmt::format("model '{}' version {} loaded from {} ({})", name, model->version,
                          entry.slot->path().string(), model->describe()));
  }
  state.ready = true;
  if (state.options.watch && !impl_->watcher) {
    Impl* impl = impl_.get();
    impl_->watcher = std::make_unique<PeriodicThread>(state.options.watch_interval, [impl] {
      for (auto& [name, entry] : impl->state.models)
        if (entry.slot->changed_on_disk()) impl->reload(entry, "the file changed");
    });
  }
}

int InferenceServer::reload_all() {
  int failures = 0;
  for (auto& [name, entry] : impl_->state.models)
    if (!impl_->reload(entry, "reload requested")) ++failures;
  return failures;
}

void InferenceServer::stop() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->watcher.reset();
  // Stops accepting and answers every request in flight (their batches still run), then the
  // threads they used go.
  impl_->http->stop();
  impl_->state.workers.join();
  impl_->state.deadlines.stop();
  for (auto& [name, entry] : impl_->state.models) entry.batcher->stop();
  impl_->state.ready = false;
  if (impl_->previous_blas_threads > 0) detail::set_blas_threads(impl_->previous_blas_threads);
}

int InferenceServer::port() const {
  return impl_->port;
}

bool InferenceServer::ready() const {
  return impl_->state.ready.load();
}

std::string InferenceServer::model_version(const std::string& name) const {
  const auto found = impl_->state.models.find(name);
  if (found == impl_->state.models.end()) return "";
  const auto model = found->second.slot->current();
  return model ? std::to_string(model->version) : "";
}

ModelCounters InferenceServer::counters(const std::string& name) const {
  return impl_->state.metrics.counters(name);
}

std::string InferenceServer::metrics_text() const {
  return impl_->state.metrics.text();
}

}  // namespace lathe
