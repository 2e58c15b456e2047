// What every route shares: error bodies, finding the model, reading the body within limits.
#include "src/serve/http_support.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

namespace lathe::serve {

using httplib::Request;
using httplib::Response;

namespace {

std::string model_list(const ServerState& state) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : state.models) names.push_back(json_string(name));
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_error(Response& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(fmt::format("{{\"error\":{}}}", json_string(message)), kJson);
}

std::shared_ptr<const ServedModel> find_model(const ServerState& state, const Request& req,
                                              Response& res, const ModelEntry** entry_out) {
  const std::string name = req.matches[1];
  const auto found = state.models.find(name);
  if (found == state.models.end()) {
    send_error(
        res, 404,
        fmt::format("unknown model {}; this server has {}", json_string(name), model_list(state)));
    return nullptr;
  }
  if (entry_out) *entry_out = &found->second;
  std::shared_ptr<const ServedModel> model = found->second.slot->current();
  if (!model) {
    send_error(res, 503, fmt::format("model {} is not loaded yet", json_string(name)));
    return nullptr;
  }
  if (req.matches[2].matched && req.matches[2].str() != std::to_string(model->version)) {
    send_error(res, 404,
               fmt::format("model {} has no version {}; it serves version \"{}\"",
                           json_string(name), json_string(req.matches[2].str()), model->version));
    return nullptr;
  }
  return model;
}

std::optional<std::string> read_body(const ServerState& state, const Request& req,
                                     const httplib::ContentReader& reader, const Failure& fail) {
  std::string body;
  bool too_large = false;
  const std::size_t limit = state.options.max_body_bytes;
  // Past the limit the rest is read and dropped, up to a cap, so that the 413 reaches a client
  // still sending: closing with unread data would reset the connection and lose the answer.
  const std::size_t drain_cap = std::max<std::size_t>(limit, 1 << 20);
  std::size_t dropped = 0;
  const bool complete = reader([&](const char* data, std::size_t length) {
    if (too_large || length > limit - std::min(limit, body.size())) {
      if (!too_large) body = std::string();
      too_large = true;
      dropped += length;
      return dropped <= drain_cap;
    }
    body.append(data, length);
    return true;
  });
  if (too_large || (!complete && req.has_header("Content-Length") &&
                    req.get_header_value<std::uint64_t>("Content-Length") > limit)) {
    fail(413, FailureReason::BadRequest,
         fmt::format("the request body is larger than {} bytes (--max-body-bytes)", limit));
    return std::nullopt;
  }
  if (!complete) {
    fail(400, FailureReason::BadRequest, "the request body could not be read");
    return std::nullopt;
  }
  return body;
}

}  // namespace lathe::serve
