// InferenceServer: the models, their batchers, the HTTP server and the file watcher, started and
// stopped in the right order (HTTP drains before the batchers stop, so every request in flight
// gets its answer).
#include <fmt/format.h>
#include <httplib.h>

#include <cctype>
#include <cstdio>
#include <set>
#include <thread>

#include "lathe/error.h"
#include "lathe/serve.h"
#include "src/http/connection_threads.h"
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
  require(o.http_threads >= 1, "--threads must be at least 1");
  require(o.max_connections >= o.http_threads,
          "--max-connections must be at least --threads (the threads that wait from the start)");
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
  http::HttpServer http;
  std::thread listener;
  int port = -1;
  std::unique_ptr<PeriodicThread> watcher;
  std::mutex lifecycle_mutex;  // start, load_models and stop
  bool stopped = false;
  int previous_blas_threads = 0;  // to restore at stop; 0: unchanged
  std::atomic<bool> stopping{false};

  std::atomic<bool> listener_done{false};

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
  serve::install_routes(impl_->http, state);
}

InferenceServer::~InferenceServer() {
  stop();
}

int InferenceServer::start() {
  std::lock_guard lock(impl_->lifecycle_mutex);
  if (impl_->stopped) throw Error("serve: the server was stopped");
  if (impl_->port >= 0) return impl_->port;
  http::HttpServer& http = impl_->http;
  const ServeOptions& o = impl_->state.options;
  http.new_task_queue = [warm = o.http_threads, most = o.max_connections] {
    return new http::ConnectionThreads(warm, most);
  };
  http.set_payload_max_length(o.max_body_bytes);
  http.set_tcp_nodelay(true);
  http.set_keep_alive_max_count(1000);
  // httplib's defaults stay: 5 s keep-alive idle time, 5 s per read and per write, so a client
  // that stalls mid-request gives its thread back.
  const int port = o.port == 0 ? http.bind_to_any_port(o.host)
                               : (http.bind_to_port(o.host, o.port) ? o.port : -1);
  if (port < 0)
    throw Error(
        fmt::format("serve: cannot listen on {}:{} (address in use, or not an address of "
                    "this machine)",
                    o.host, o.port));
  http.widen_accept_queue();
  Impl* impl = impl_.get();
  if (o.blas_threads > 0 && detail::blas_threads() != o.blas_threads) {
    impl_->previous_blas_threads = detail::blas_threads();
    detail::set_blas_threads(o.blas_threads);
  }
  impl_->listener = std::thread([impl] {
    impl->http.listen_after_bind();
    impl->listener_done = true;
    if (!impl->stopping) impl->state.log("error: the listening socket failed; no new connections");
  });
  // stop() only takes effect once the accept loop runs, so wait for it.
  while (!http.is_running() && !impl_->listener_done)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (impl_->listener_done) {
    impl_->listener.join();
    throw Error(fmt::format("serve: listening on {}:{} failed", o.host, port));
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
  impl_->stopping = true;
  impl_->watcher.reset();
  // Stops accepting; the thread pool finishes the requests in flight before listen returns.
  impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
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
