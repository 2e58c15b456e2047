// What every route shares: error bodies and finding the model.
#include "src/serve/http_support.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

namespace lathe::serve {
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

Response error_response(int status, std::string_view message) {
  Response response;
  response.status = status;
  response.content_type = kJson;
  response.body = fmt::format("{{\"error\":{}}}", json_string(message));
  return response;
}

Response json_response(std::string body) {
  Response response;
  response.content_type = kJson;
  response.body = std::move(body);
  return response;
}

std::shared_ptr<const ServedModel> find_model(const ServerState& state, const ModelPath& path,
                                              Response& refusal, const ModelEntry** entry_out) {
  const auto found = state.models.find(path.name);
  if (found == state.models.end()) {
    refusal = error_response(404, fmt::format("unknown model {}; this server has {}",
                                              json_string(path.name), model_list(state)));
    return nullptr;
  }
  if (entry_out) *entry_out = &found->second;
  std::shared_ptr<const ServedModel> model = found->second.slot->current();
  if (!model) {
    refusal =
        error_response(503, fmt::format("model {} is not loaded yet", json_string(path.name)));
    return nullptr;
  }
  if (path.version && *path.version != std::to_string(model->version)) {
    refusal = error_response(
        404, fmt::format("model {} has no version {}; it serves version \"{}\"",
                         json_string(path.name), json_string(*path.version), model->version));
    return nullptr;
  }
  return model;
}

void run_on_worker(ServerState& state, const Reply& reply, std::function<void()> task) {
  state.workers.run([reply, task = std::move(task)] {
    try {
      task();
    } catch (const std::exception& e) {
      reply.send(error_response(500, fmt::format("internal error: {}", e.what())));
    }
  });
}

}  // namespace lathe::serve
