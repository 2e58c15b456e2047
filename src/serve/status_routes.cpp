// The routes that answer about the server and its models: health, server and model metadata,
// model readiness, and the Prometheus metrics.
#include <nlohmann/json.hpp>

#include "lathe/version.h"
#include "src/serve/http_support.h"

namespace lathe::serve {

using httplib::Request;
using httplib::Response;

void install_status_routes(httplib::Server& http, ServerState& state) {
  http.Get("/v2/health/live", [](const Request&, Response& res) { res.status = 200; });
  http.Get("/v2/health/ready", [&state](const Request&, Response& res) {
    if (state.ready.load())
      res.status = 200;
    else
      send_error(res, 503, "the models are not loaded yet");
  });
  http.Get("/v2", [](const Request&, Response& res) {
    const nlohmann::json metadata = {
        {"name", "lathe"}, {"version", lathe::version()}, {"extensions", nlohmann::json::array()}};
    res.set_content(metadata.dump(), kJson);
  });
  http.Get(kModelPath, [&state](const Request& req, Response& res) {
    if (const auto model = find_model(state, req, res, nullptr))
      res.set_content(model->metadata_json, kJson);
  });
  http.Get(std::string(kModelPath) + "/ready", [&state](const Request& req, Response& res) {
    if (find_model(state, req, res, nullptr)) res.status = 200;
  });
  http.Get("/metrics", [&state](const Request&, Response& res) {
    res.set_content(state.metrics.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace lathe::serve
