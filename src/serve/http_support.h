#pragma once
// Internal: what every route of `lathe serve` shares: JSON error bodies and the model a URL names.
#include <memory>
#include <string>
#include <string_view>

#include "src/http/event_server.h"
#include "src/serve/model_path.h"
#include "src/serve/routes.h"

namespace lathe::serve {

using http::Reply;
using http::Request;
using http::Response;

inline constexpr const char* kJson = "application/json";

// JSON text of a string; bytes that are not UTF-8 (from a URL, say) become U+FFFD.
std::string json_string(std::string_view text);

// `status` with the body {"error": message}.
Response error_response(int status, std::string_view message);
// 200 with a JSON body.
Response json_response(std::string body);

// The model `path` names and its current version, or nullptr after setting `refusal` to a 404 or
// 503. `entry_out`, when given, gets the model's entry even when its version is not served.
std::shared_ptr<const ServedModel> find_model(const ServerState& state, const ModelPath& path,
                                              Response& refusal, const ModelEntry** entry_out);

// The failure find_model's refusal counts as in the metrics.
inline FailureReason refusal_reason(const Response& refusal) {
  return refusal.status == 503 ? FailureReason::NotReady : FailureReason::BadRequest;
}

// Runs `task` on a worker thread, off the HTTP event threads; an exception it lets out is
// answered 500.
void run_on_worker(ServerState& state, const Reply& reply, std::function<void()> task);

}  // namespace lathe::serve
