#pragma once
// The HTTP side: the Open Inference Protocol v2 routes, authentication, error bodies and request
// accounting, as the hooks of the event-driven transport (src/http/event_server.h).
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "lathe/serve.h"
#include "src/http/event_server.h"
#include "src/serve/batcher.h"
#include "src/serve/deadlines.h"
#include "src/serve/metrics.h"
#include "src/serve/model_path.h"
#include "src/serve/model_slot.h"
#include "src/serve/workers.h"

namespace lathe::serve {

struct ModelEntry {
  std::unique_ptr<ModelSlot> slot;
  std::unique_ptr<Batcher> batcher;
};

// What the routes read. The map of models is fixed before the server starts.
struct ServerState {
  ServeOptions options;
  Metrics metrics;
  std::map<std::string, ModelEntry, std::less<>> models;
  std::atomic<bool> ready{false};
  std::function<void(std::string_view)> log;
  Deadlines deadlines;  // the --request-timeout-ms of queued inferences
  Workers workers;      // generations and large bodies, kept off the event threads
};

// Every route, with access control, error bodies and request accounting (routes.cpp).
http::EventServer::Hooks route_hooks(ServerState& state);

// The routes by concern, which route_hooks dispatches to.
// Health, metadata, readiness, /metrics (GET and HEAD); nullopt for any other path.
std::optional<http::Response> answer_status(const ServerState& state, const http::Request& req);
void handle_infer(ServerState& state, http::Request& req, const ModelPath& path,
                  http::Reply reply);  // POST .../infer
void handle_generate(ServerState& state, http::Request& req, const ModelPath& path,
                     http::Reply reply);  // POST .../generate

}  // namespace lathe::serve
