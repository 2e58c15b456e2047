// The HTTP side of `lathe serve` wired together: access control and body limits before routing,
// JSON bodies for every error httplib answers itself, request accounting, then the routes by
// concern (status_routes.cpp, infer_route.cpp, generate_route.cpp). Nothing a client sends can
// throw past a handler.
#include "src/serve/routes.h"

#include <fmt/format.h>

#include "src/serve/http_support.h"

namespace lathe::serve {
namespace {

using httplib::Request;
using httplib::Response;

bool constant_time_equal(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i)
    difference |= static_cast<unsigned char>(a[i] ^ (i < b.size() ? b[i] : 0));
  return difference == 0;
}

bool authorized(const Request& req, const std::string& key) {
  const std::string bearer = req.get_header_value("Authorization");
  constexpr std::string_view prefix = "Bearer ";
  if (bearer.size() > prefix.size() &&
      std::string_view(bearer).substr(0, prefix.size()) == prefix &&
      constant_time_equal(std::string_view(bearer).substr(prefix.size()), key))
    return true;
  return req.has_header("X-API-Key") && constant_time_equal(req.get_header_value("X-API-Key"), key);
}

// 404 for paths that exist nowhere, 405 for a known path asked with the wrong method.
void describe_unrouted(const Request& req, Response& res) {
  const std::string_view post_endpoint = Metrics::endpoint_of("POST", req.path);
  const bool infer_path = post_endpoint == "infer" || post_endpoint == "generate";
  const std::string_view get_endpoint = Metrics::endpoint_of("GET", req.path);
  if (infer_path && req.method != "POST") {
    res.set_header("Allow", "POST");
    return send_error(res, 405, fmt::format("{} takes POST, not {}", req.path, req.method));
  }
  if (!infer_path && get_endpoint != "other" && req.method != "GET" && req.method != "HEAD") {
    res.set_header("Allow", "GET, HEAD");
    return send_error(res, 405, fmt::format("{} takes GET, not {}", req.path, req.method));
  }
  send_error(res, 404, fmt::format("no route for {} {}", req.method, req.path));
}

}  // namespace

void install_routes(httplib::Server& http, ServerState& state) {
  using HandlerResponse = httplib::Server::HandlerResponse;

  // Before routing (and before any body is read): authentication, and no bodies where none is
  // expected (httplib would buffer a chunked or compressed body without limit).
  http.set_pre_routing_handler([&state](const Request& req, Response& res) {
    const bool health = req.path.rfind("/v2/health/", 0) == 0;
    if (!state.options.api_key.empty() && !health && !authorized(req, state.options.api_key)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, 401,
                 "missing or wrong API key: send \"Authorization: Bearer KEY\" or "
                 "\"X-API-Key: KEY\"");
      return HandlerResponse::Handled;
    }
    const std::string_view endpoint = Metrics::endpoint_of(req.method, req.path);
    const bool takes_body = endpoint == "infer" || endpoint == "generate";
    if (!takes_body &&
        (req.has_header("Transfer-Encoding") || req.has_header("Content-Encoding"))) {
      res.set_header("Connection", "close");
      send_error(res, 400,
                 fmt::format("{} {} takes no request body; only POST "
                             "/v2/models/{{name}}/infer and .../generate do",
                             req.method, req.path));
      return HandlerResponse::Handled;
    }
    return HandlerResponse::Unhandled;
  });

  // Called for every response of status >= 400: fills in a JSON body where there is none
  // (httplib's own 400, 404, 413, 414, 415 answers).
  http.set_error_handler([&state](const Request& req, Response& res) {
    if (!res.body.empty()) return;
    switch (res.status) {
      case 404:
        return describe_unrouted(req, res);
      case 413:
        return send_error(res, 413,
                          fmt::format("the request body is larger than {} bytes (--max-body-bytes)",
                                      state.options.max_body_bytes));
      case 414:
        return send_error(res, 414, "the request URI is too long");
      case 415:
        return send_error(res, 415, "unsupported Content-Encoding; use gzip, deflate or br");
      default:
        return send_error(res, res.status,
                          res.status == 400 ? "malformed HTTP request"
                                            : fmt::format("HTTP status {}", res.status));
    }
  });

  http.set_exception_handler([&state](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    state.log(fmt::format("internal error answering {} {}: {}", req.method, req.path, what));
    send_error(res, 500, fmt::format("internal error: {}", what));
  });

  http.set_logger([&state](const Request& req, const Response& res) {
    state.metrics.record_http(Metrics::endpoint_of(req.method, req.path), res.status);
  });

  install_status_routes(http, state);
  install_infer_route(http, state);
  install_generate_route(http, state);
}

}  // namespace lathe::serve
