// The HTTP side of `lathe serve` wired together: access control and refusing bodies where none
// belongs before a body is read, request accounting, then the routes by concern
// (status_routes.cpp, infer_route.cpp, generate_route.cpp). Nothing a client sends can throw past
// a handler: the transport answers 500 for anything that does.
#include "src/serve/routes.h"

#include <fmt/format.h>

#include "src/http/ascii.h"
#include "src/serve/http_support.h"

namespace lathe::serve {
namespace {

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    difference |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return difference == 0;
}

bool authorized(const Request& req, const std::string& key) {
  constexpr std::string_view prefix = "Bearer ";  // the scheme's name is case-insensitive
  if (const std::string* bearer = req.header("Authorization")) {
    const std::string_view value = *bearer;
    if (value.size() > prefix.size() && http::starts_with_ignoring_case(value, prefix) &&
        constant_time_equal(value.substr(prefix.size()), key))
      return true;
  }
  const std::string* api_key = req.header("X-API-Key");
  return api_key && constant_time_equal(*api_key, key);
}

Response with_header(Response response, std::string name, std::string value) {
  response.headers.push_back({std::move(name), std::move(value)});
  return response;
}

// Before the body is read: authentication, and no chunked or compressed bodies where none is
// expected.
std::optional<Response> screen(const ServerState& state, const Request& req) {
  const bool health = req.path.rfind("/v2/health/", 0) == 0;
  if (!state.options.api_key.empty() && !health && !authorized(req, state.options.api_key))
    return with_header(error_response(401,
                                      "missing or wrong API key: send \"Authorization: Bearer "
                                      "KEY\" or \"X-API-Key: KEY\""),
                       "WWW-Authenticate", "Bearer");
  const std::string_view endpoint = Metrics::endpoint_of(req.method, req.path);
  const bool known = endpoint != "other";  // unknown paths are 404s, whatever they send
  const bool takes_body = endpoint == "infer" || endpoint == "generate";
  if (known && !takes_body && (req.header("Transfer-Encoding") || req.header("Content-Encoding")))
    return with_header(error_response(400, fmt::format("{} {} takes no request body; only POST "
                                                       "/v2/models/{{name}}/infer and .../generate "
                                                       "do",
                                                       req.method, req.path)),
                       "Connection", "close");
  return std::nullopt;
}

// 404 for paths that exist nowhere, 405 for a known path asked with the wrong method.
Response describe_unrouted(const Request& req) {
  const std::string_view post_endpoint = Metrics::endpoint_of("POST", req.path);
  const bool infer_path = post_endpoint == "infer" || post_endpoint == "generate";
  const std::string_view get_endpoint = Metrics::endpoint_of("GET", req.path);
  if (infer_path && req.method != "POST")
    return with_header(
        error_response(405, fmt::format("{} takes POST, not {}", req.path, req.method)), "Allow",
        "POST");
  if (!infer_path && get_endpoint != "other" && req.method != "GET" && req.method != "HEAD")
    return with_header(
        error_response(405, fmt::format("{} takes GET, not {}", req.path, req.method)), "Allow",
        "GET, HEAD");
  return error_response(404, fmt::format("no route for {} {}", req.method, req.path));
}

void route(ServerState& state, Request& req, const Reply& reply) {
  if (req.method == "GET" || req.method == "HEAD") {
    if (std::optional<Response> answer = answer_status(state, req))
      return reply.send(std::move(*answer));
  } else if (req.method == "POST") {
    if (const std::optional<ModelPath> path = parse_model_path(req.path)) {
      if (path->action == "infer") return handle_infer(state, req, *path, reply);
      if (path->action == "generate") return handle_generate(state, req, *path, reply);
    }
  }
  reply.send(describe_unrouted(req));
}

}  // namespace

http::EventServer::Hooks route_hooks(ServerState& state) {
  http::EventServer::Hooks hooks;
  hooks.screen = [&state](const Request& req) { return screen(state, req); };
  hooks.handle = [&state](Request& req, const Reply& reply) {
    try {
      route(state, req, reply);
    } catch (const std::exception& e) {
      state.log(fmt::format("internal error answering {} {}: {}", req.method, req.path, e.what()));
      reply.send(error_response(500, fmt::format("internal error: {}", e.what())));
    }
  };
  hooks.answered = [&state](const Request& req, int status) {
    state.metrics.record_http(Metrics::endpoint_of(req.method, req.path), status);
  };
  hooks.refused = [&state](const Request& req, int) {
    // A model's requests refused for their bodies count as its bad requests.
    const std::optional<ModelPath> path = parse_model_path(req.path);
    if (!path || req.method != "POST" || !state.models.count(path->name)) return;
    const std::string name(path->name);
    if (path->action == "infer")
      state.metrics.record_infer_failure(name, FailureReason::BadRequest);
    if (path->action == "generate")
      state.metrics.record_generate_failure(name, FailureReason::BadRequest, 0);
  };
  hooks.error = error_response;
  return hooks;
}

}  // namespace lathe::serve
