// POST /v2/models/{name}/generate: text from a language model, whole or streamed as Server-Sent
// Events, on a worker thread of its own (generation only reads a model in eval mode; no
// batching).
#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "lathe/text.h"
#include "src/serve/generate_request.h"
#include "src/serve/http_support.h"

namespace lathe::serve {
namespace {

// One Server-Sent Event: "data: JSON\n\n".
std::string sse_event(std::string_view json_text) {
  return fmt::format("data: {}\n\n", json_text);
}

// The last event of a stream: the characters still held back (U+FFFD for bytes that never
// completed one), and the count.
std::string sse_done_event(std::string_view rest, std::int64_t tokens) {
  return sse_event(
      rest.empty()
          ? fmt::format(R"({{"done":true,"tokens":{},"finish_reason":"length"}})", tokens)
          : fmt::format(R"({{"text":{},"done":true,"tokens":{},"finish_reason":"length"}})",
                        json_string(rest), tokens));
}

// Streams the generation as Server-Sent Events. A failed write means the client went away: the
// token callback returns false and generation stops.
void stream_generation(ServerState& state, const std::shared_ptr<const ServedModel>& model,
                       const std::vector<std::int64_t>& prompt, const GenerateRequest& request,
                       http::Stream& sink) {
  const std::string& name = model->name;
  const GenerationModel& language_model = *model->generation();
  std::int64_t count = 0;
  bool disconnected = false;
  try {
    Utf8Stream utf8;
    const SamplingOptions sampling{request.temperature, request.top_k, request.seed};
    language_model.generate(prompt, request.max_tokens, sampling, [&](std::int64_t token) {
      ++count;
      const std::string text = utf8.push(language_model.tokenizer().token_bytes(token));
      disconnected = !sink.write(
          sse_event(fmt::format(R"({{"text":{},"token":{}}})", json_string(text), token)));
      return !disconnected;
    });
    if (!disconnected) disconnected = !sink.write(sse_done_event(utf8.finish(), count));
  } catch (const std::exception& e) {
    state.log(fmt::format("internal error streaming from model '{}': {}", name, e.what()));
    state.metrics.record_generate_failure(name, FailureReason::Internal, count);
    sink.write(sse_event(fmt::format(R"({{"error":{}}})", json_string(e.what()))));
    sink.close();
    return;
  }
  if (disconnected) {
    state.metrics.record_generate_failure(name, FailureReason::ClientDisconnected, count);
    sink.close();
    return;
  }
  // Counted before the stream ends, so a client that has read the whole stream sees it counted.
  state.metrics.record_generate_success(name, count);
  sink.close();
}

// Generates on a worker thread: the whole text in one answer, or streamed.
void generate(ServerState& state, const std::string& name,
              const std::shared_ptr<const ServedModel>& model, const std::string& body,
              Clock::time_point arrived, const Reply& reply) {
  auto fail = [&](int status, FailureReason reason, std::string_view message,
                  std::int64_t tokens = 0) {
    state.metrics.record_generate_failure(name, reason, tokens);
    reply.send(error_response(status, message));
  };
  const GenerationModel* language_model = model->generation();
  if (!language_model)
    return fail(
        400, FailureReason::BadRequest,
        fmt::format("model {} is not a language model (it is a {}): POST "
                    "/v2/models/{}/{}",
                    json_string(name), task_in_words(model->task()), name, model->endpoint()));
  GenerateRequest request;
  try {
    request = parse_generate_request(
        body, {state.options.max_generate_tokens, state.options.max_elements});
  } catch (const RequestError& e) {
    return fail(e.status(), FailureReason::BadRequest, e.what());
  }
  std::vector<std::int64_t> prompt;
  try {
    prompt = language_model->tokenizer().encode(request.prompt);
  } catch (const Error& e) {
    return fail(400, FailureReason::BadRequest, fmt::format("\"prompt\": {}", e.what()));
  }

  if (request.stream) {
    Response events;
    events.content_type = "text/event-stream";
    events.headers = {{"Cache-Control", "no-cache"},
                      {"X-Accel-Buffering", "no"}};  // proxies: pass each event on at once
    events.stream = std::make_shared<http::Stream>();
    const std::shared_ptr<http::Stream> sink = events.stream;
    reply.send(std::move(events));
    return stream_generation(state, model, prompt, request, *sink);
  }

  // The whole text in one answer, within the request timeout.
  const Clock::time_point deadline = arrived + state.options.request_timeout;
  Utf8Stream utf8;
  std::string text;
  std::int64_t count = 0;
  bool timed_out = false;
  try {
    const SamplingOptions sampling{request.temperature, request.top_k, request.seed};
    language_model->generate(prompt, request.max_tokens, sampling, [&](std::int64_t token) {
      ++count;
      text += utf8.push(language_model->tokenizer().token_bytes(token));
      timed_out = count < request.max_tokens && Clock::now() >= deadline;
      return !timed_out;
    });
  } catch (const std::exception& e) {
    state.log(fmt::format("internal error generating from model '{}': {}", name, e.what()));
    return fail(500, FailureReason::Internal, fmt::format("internal error: {}", e.what()), count);
  }
  if (timed_out)
    return fail(504, FailureReason::Timeout,
                fmt::format("generation from model {} did not finish within {} ms "
                            "(--request-timeout-ms): {} of {} tokens; ask for fewer or stream them "
                            "(\"stream\": true)",
                            json_string(name), state.options.request_timeout.count(), count,
                            request.max_tokens),
                count);
  text += utf8.finish();
  const nlohmann::json answer = {{"model_name", name},
                                 {"model_version", std::to_string(model->version)},
                                 {"text", text},
                                 {"tokens", count},
                                 {"finish_reason", "length"}};
  // Counted before the answer goes, so a client that has it sees it counted.
  state.metrics.record_generate_success(name, count);
  reply.send(json_response(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)));
}

}  // namespace

void handle_generate(ServerState& state, Request& req, const ModelPath& path, Reply reply) {
  const Clock::time_point arrived = Clock::now();
  const ModelEntry* entry = nullptr;
  Response refusal;
  std::shared_ptr<const ServedModel> model = find_model(state, path, refusal, &entry);
  if (!model) {
    if (entry) state.metrics.record_generate_failure(entry->slot->name(), refusal_reason(refusal));
    return reply.send(std::move(refusal));
  }
  run_on_worker(
      state, reply,
      [&state, &name = entry->slot->name(), model = std::move(model), body = std::move(req.body),
       arrived, reply] { generate(state, name, model, body, arrived, reply); });
}

}  // namespace lathe::serve
