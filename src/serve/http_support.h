#pragma once
// Internal: what every route of `lathe serve` shares: JSON error bodies, the model a URL names,
// and reading a request body within the limit.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>

#include "src/serve/routes.h"

namespace lathe::serve {

inline constexpr const char* kJson = "application/json";
// /v2/models/{name} or /v2/models/{name}/versions/{version}; the routes append their endpoint.
inline constexpr const char* kModelPath = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

// JSON text of a string; bytes that are not UTF-8 (from a URL, say) become U+FFFD.
std::string json_string(std::string_view text);

// Answers `status` with the body {"error": message}.
void send_error(httplib::Response& res, int status, std::string_view message);

// The model a /v2/models/{name}[/versions/{version}]/... request names and its current version,
// or nullptr after answering 404 or 503. `entry_out`, when given, gets the model's entry even
// when its version is not served.
std::shared_ptr<const ServedModel> find_model(const ServerState& state, const httplib::Request& req,
                                              httplib::Response& res, const ModelEntry** entry_out);

// How a route answers a failure: records it in the metrics and sends the error body.
using Failure = std::function<void(int status, FailureReason reason, std::string_view message)>;

// The request body, at most max_body_bytes after decompression (httplib refuses a larger
// Content-Length before any of it is read); nullopt after `fail` has answered 413 or 400.
std::optional<std::string> read_body(const ServerState& state, const httplib::Request& req,
                                     const httplib::ContentReader& reader, const Failure& fail);

}  // namespace lathe::serve
