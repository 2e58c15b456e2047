// `lathe serve BUNDLE...`: serve model bundles over HTTP (Open Inference Protocol v2) until
// SIGTERM or SIGINT. All the work is in src/serve/; this reads the options.
#include <fmt/format.h>

#include <iostream>

#include "lathe/error.h"
#include "lathe/serve.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct ServeCliOptions {
  std::vector<std::string> bundles;
  std::vector<std::string> names;
  ServeOptions serve;
  std::int64_t max_queue_delay_us = 0;
  std::int64_t request_timeout_ms = 30000;
  std::int64_t watch_interval_ms = 1000;
  std::string precision = "float32";
};

void run_serve(ServeCliOptions& options) {
  if (!options.names.empty() && options.names.size() != options.bundles.size())
    throw Error(fmt::format("serve: {} --name for {} bundles; give one per bundle, in order",
                            options.names.size(), options.bundles.size()));
  std::vector<ServedBundle> bundles;
  for (std::size_t i = 0; i < options.bundles.size(); ++i)
    bundles.push_back(
        {options.names.empty() ? default_model_name(options.bundles[i]) : options.names[i],
         options.bundles[i]});
  ServeOptions serve = options.serve;
  serve.max_queue_delay = std::chrono::microseconds(options.max_queue_delay_us);
  serve.request_timeout = std::chrono::milliseconds(options.request_timeout_ms);
  serve.watch_interval = std::chrono::milliseconds(options.watch_interval_ms);
  serve.precision = precision_from_name(options.precision);

  ServeSignals signals;  // from here on a SIGTERM waits until the models are loaded, then exits 0
  InferenceServer server(std::move(bundles), serve);
  const int port = server.start();
  const std::string host =
      serve.host.find(':') != std::string::npos ? "[" + serve.host + "]" : serve.host;
  std::cout << fmt::format("lathe serve: listening on http://{}:{}", host, port) << std::endl;
  server.load_models();
  std::cerr << "lathe serve: ready" << std::endl;
  signals.serve_until_stopped(server);
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto options = std::make_shared<ServeCliOptions>();
  ServeOptions& s = options->serve;
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Serve model bundles over HTTP with the Open Inference Protocol v2 (KServe/Triton REST); "
      "language models generate text at /v2/models/NAME/generate");
  cmd->add_option("bundle", options->bundles,
                  "model bundles written by lathe train or lathe import, or .onnx files")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--name", options->names,
                  "model name in the URLs, one per bundle in order (default: the file name "
                  "without extension)");
  cmd->add_option("--host", s.host, "address to bind")->capture_default_str();
  cmd->add_option("--port", s.port, "port to bind; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--threads", s.http_threads,
                  "HTTP event threads, each serving its share of the connections without "
                  "waiting on any; 0: one per CPU")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd->add_option("--max-connections", s.max_connections,
                  "most connections open at once; a connection beyond them waits, not "
                  "accepted, until one closes")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--max-batch-size", s.max_batch_size,
                  "most examples one forward runs (dynamic batching; 1 disables it)")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--max-queue-delay-us", options->max_queue_delay_us,
                  "how long a batch waits for more requests; 0 runs what is queued at once")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd->add_option("--max-queue", s.max_queue, "requests waiting per model; more are answered 503")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", s.max_body_bytes, "largest request body (413 beyond)")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--request-timeout-ms", options->request_timeout_ms,
                  "answer 504 when a request has no result by then")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--max-json-depth", s.max_json_depth, "deepest JSON nesting accepted (400)")
      ->check(CLI::Range(4, 1000))
      ->capture_default_str();
  cmd->add_option("--max-elements", s.max_elements, "most tensor elements in one request (400)")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--max-generate-tokens", s.max_generate_tokens,
                  "language models: the most tokens one generate request may ask for (400)")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_option("--blas-threads", s.blas_threads,
                  "OpenBLAS threads while serving; 0 keeps OpenBLAS's default (all cores)")
      ->check(kNonNegative)
      ->capture_default_str();
  cmd->add_flag("--parallel-forward", s.parallel_forward,
                "split one batch's forward over lathe's kernel pool (all cores); off, each "
                "model's worker runs its batches alone, which serves more requests under load");
  add_precision_option(cmd, options->precision);
  cmd->add_option("--api-key", s.api_key,
                  "require 'Authorization: Bearer KEY' or 'X-API-Key: KEY' (health endpoints "
                  "stay open)")
      ->envname("LATHE_API_KEY");
  // Two flags rather than CLI11's "--watch,!--no-watch", whose help shows {false}, the value
  // --no-watch sets, where a reader looks for the default.
  cmd->add_flag("--watch", s.watch,
                "reload a bundle when its file changes (polls size, mtime, inode); the default");
  cmd->add_flag_callback(
      "--no-watch", [options] { options->serve.watch = false; },
      "serve each bundle as loaded at start; changes need a restart");
  cmd->add_option("--watch-interval-ms", options->watch_interval_ms, "how often to poll")
      ->check(kPositive)
      ->capture_default_str();
  cmd->add_flag("--allow-signature-change", s.allow_signature_change,
                "accept a reloaded bundle whose task, inputs or outputs differ from the version "
                "being served (refused and logged otherwise)");
  cmd->callback([options] { run_serve(*options); });
}

}  // namespace lathe::cli
