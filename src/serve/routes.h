#pragma once
// The HTTP side: the Open Inference Protocol v2 routes, authentication, error bodies and request
// accounting, installed on a cpp-httplib server.
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "lathe/serve.h"
#include "src/serve/batcher.h"
#include "src/serve/metrics.h"
#include "src/serve/model_slot.h"

namespace httplib {
class Server;
}

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
};

// Every route, with access control, limits and error bodies (routes.cpp).
void install_routes(httplib::Server& http, ServerState& state);

// The routes by concern, which install_routes calls.
void install_status_routes(httplib::Server& http,
                           ServerState& state);                       // health, metadata, /metrics
void install_infer_route(httplib::Server& http, ServerState& state);  // POST .../infer
void install_generate_route(httplib::Server& http, ServerState& state);  // POST .../generate

}  // namespace lathe::serve
