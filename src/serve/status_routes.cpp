// The routes that answer about the server and its models: health, server and model metadata,
// model readiness, and the Prometheus metrics.
#include <nlohmann/json.hpp>

#include "lathe/version.h"
#include "src/serve/http_support.h"

namespace lathe::serve {

std::optional<Response> answer_status(const ServerState& state, const Request& req) {
  if (req.path == "/v2/health/live") return Response{};
  if (req.path == "/v2/health/ready")
    return state.ready.load() ? Response{} : error_response(503, "the models are not loaded yet");
  if (req.path == "/v2") {
    const nlohmann::json metadata = {
        {"name", "lathe"}, {"version", lathe::version()}, {"extensions", nlohmann::json::array()}};
    return json_response(metadata.dump());
  }
  if (req.path == "/metrics") {
    Response response;
    response.content_type = "text/plain; version=0.0.4; charset=utf-8";
    response.body = state.metrics.text();
    return response;
  }
  const std::optional<ModelPath> path = parse_model_path(req.path);
  if (!path || (!path->action.empty() && path->action != "ready")) return std::nullopt;
  Response refusal;
  const auto model = find_model(state, *path, refusal, nullptr);
  if (!model) return refusal;
  return path->action.empty() ? json_response(model->metadata_json) : Response{};
}

}  // namespace lathe::serve
