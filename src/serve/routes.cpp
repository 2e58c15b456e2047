// Routes of the Open Inference Protocol v2 REST API (plus /metrics). Every error is answered
// with a JSON body {"error": "..."}; nothing a client sends can throw past a handler.
#include "src/serve/routes.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>

#include "lathe/gpt.h"
#include "lathe/text.h"
#include "lathe/version.h"
#include "src/serve/generate_request.h"
#include "src/serve/infer_request.h"

namespace lathe::serve {
namespace {

using httplib::Request;
using httplib::Response;

constexpr const char* kJson = "application/json";
constexpr const char* kModelPath = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";

// JSON text of a string; bytes that are not UTF-8 (from a URL, say) become U+FFFD.
std::string json_string(std::string_view text) {
  return nlohmann::json(std::string(text))
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void send_error(Response& res, int status, std::string_view message) {
  res.status = status;
  res.set_content(fmt::format("{{\"error\":{}}}", json_string(message)), kJson);
}

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

std::string model_list(const ServerState& state) {
  std::vector<std::string> names;
  for (const auto& [name, entry] : state.models) names.push_back(json_string(name));
  return fmt::format("{}", fmt::join(names, ", "));
}

// The model a /v2/models/{name}[/versions/{version}]/... request names and its current version,
// or nullptr after answering 404 or 503.
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

void append_float(std::string& out, float value) {
  if (std::isfinite(value))
    fmt::format_to(std::back_inserter(out), "{}", value);
  else
    out += "null";  // JSON has no NaN or infinity
}

// The response body of a successful inference.
std::string infer_response(const ServedModel& model, const InferRequest& request,
                           const std::vector<float>& outputs) {
  const bool classification = model.predictor->kind() == PredictionKind::Classification;
  auto wanted = [&](const char* name) {
    return request.requested_outputs.empty() ||
           std::find(request.requested_outputs.begin(), request.requested_outputs.end(), name) !=
               request.requested_outputs.end();
  };
  std::string out;
  out.reserve(64 + outputs.size() * 12);
  out += fmt::format("{{\"model_name\":{},\"model_version\":\"{}\"", json_string(model.name),
                     model.version);
  if (request.id) out += fmt::format(",\"id\":{}", json_string(*request.id));
  out += ",\"outputs\":[";
  bool first = true;
  const char* main_output = classification ? kProbabilitiesOutput : kValuesOutput;
  if (wanted(main_output)) {
    first = false;
    out += fmt::format("{{\"name\":\"{}\",\"datatype\":\"FP32\",\"shape\":[{}", main_output,
                       request.batch);
    for (const std::int64_t dim : model.output_shape) out += fmt::format(",{}", dim);
    out += "],\"data\":[";
    for (std::size_t i = 0; i < outputs.size(); ++i) {
      if (i) out += ',';
      append_float(out, outputs[i]);
    }
    out += "]}";
  }
  if (classification && wanted(kClassIndexOutput)) {
    if (!first) out += ',';
    out += fmt::format("{{\"name\":\"{}\",\"datatype\":\"INT64\",\"shape\":[{}],\"data\":[",
                       kClassIndexOutput, request.batch);
    const std::int64_t classes = model.output_size;
    for (std::int64_t row = 0; row < request.batch; ++row) {
      const float* p = outputs.data() + row * classes;
      const std::int64_t best = std::max_element(p, p + classes) - p;
      if (row) out += ',';
      fmt::format_to(std::back_inserter(out), "{}", best);
    }
    out += "]}";
  }
  out += "]}";
  return out;
}

// The request body, at most max_body_bytes after decompression (httplib refuses a larger
// Content-Length before any of it is read); nullopt after `fail(status, reason, message)` has
// answered 413 or 400.
template <typename Fail>
std::optional<std::string> read_body(const ServerState& state, const Request& req,
                                     const httplib::ContentReader& reader, const Fail& fail) {
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

void handle_infer(ServerState& state, const Request& req, Response& res,
                  const httplib::ContentReader& reader) {
  const Clock::time_point arrived = Clock::now();
  const ModelEntry* entry = nullptr;
  const std::shared_ptr<const ServedModel> model = find_model(state, req, res, &entry);
  if (!model) {
    if (entry)
      state.metrics.record_infer_failure(entry->slot->name(), res.status == 503
                                                                  ? FailureReason::NotReady
                                                                  : FailureReason::BadRequest);
    return;
  }
  const std::string& name = entry->slot->name();
  auto fail = [&](int status, FailureReason reason, std::string_view message) {
    state.metrics.record_infer_failure(name, reason);
    send_error(res, status, message);
  };

  std::optional<std::string> read = read_body(state, req, reader, fail);
  if (!read) return;
  std::string body = std::move(*read);
  if (model->is_language_model())
    return fail(400, FailureReason::BadRequest,
                fmt::format("model {} is a language model: POST /v2/models/{}/generate with "
                            "{{\"prompt\": \"...\"}}; /infer serves classifiers and regression "
                            "models",
                            json_string(name), name));

  InferRequest request;
  try {
    const RequestLimits limits{state.options.max_json_depth, state.options.max_elements};
    request = parse_infer_request(body, model->signature, limits);
  } catch (const RequestError& e) {
    return fail(e.status(), FailureReason::BadRequest, e.what());
  }
  body = std::string();  // the parsed floats are all that is needed now

  auto job = std::make_shared<InferenceJob>();
  job->model = model;
  job->rows = request.batch;
  job->inputs = std::move(request.data);
  job->enqueued = Clock::now();
  std::future<JobResult> answer = job->result.get_future();
  switch (entry->batcher->submit(job)) {
    case Batcher::Submitted::Queued:
      break;
    case Batcher::Submitted::QueueFull:
      res.set_header("Retry-After", "1");
      return fail(503, FailureReason::QueueFull,
                  fmt::format("the queue of model {} is full ({} requests waiting, --max-queue); "
                              "retry later",
                              json_string(name), state.options.max_queue));
    case Batcher::Submitted::Stopped:
      return fail(503, FailureReason::ShuttingDown, "the server is shutting down");
  }
  if (answer.wait_until(arrived + state.options.request_timeout) != std::future_status::ready) {
    job->abandoned = true;
    return fail(504, FailureReason::Timeout,
                fmt::format("no answer from model {} within {} ms (--request-timeout-ms)",
                            json_string(name), state.options.request_timeout.count()));
  }
  const JobResult result = answer.get();
  if (result.status != 200)
    return fail(result.status,
                result.status == 503 ? FailureReason::ShuttingDown : FailureReason::Internal,
                result.error);
  res.set_content(infer_response(*model, request, result.outputs), kJson);
  state.metrics.record_infer_success(name);
}

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

// Streams the generation as Server-Sent Events from the HTTP thread (httplib calls this once the
// headers are sent). A failed write means the client went away: the token callback returns
// false and generation stops. Nothing may throw out of here: httplib calls content providers
// outside its exception handling.
bool stream_generation(ServerState& state, const std::shared_ptr<const ServedModel>& model,
                       const std::vector<std::int64_t>& prompt, const GenerateRequest& request,
                       httplib::DataSink& sink) {
  const std::string& name = model->name;
  std::int64_t count = 0;
  bool disconnected = false;
  try {
    Utf8Stream utf8;
    const SamplingOptions sampling{request.temperature, request.top_k, request.seed};
    generate(*model->gpt, prompt, request.max_tokens, sampling, [&](std::int64_t token) {
      ++count;
      const std::string text = utf8.push(model->tokenizer->token_bytes(token));
      const std::string event =
          sse_event(fmt::format(R"({{"text":{},"token":{}}})", json_string(text), token));
      disconnected = !sink.write(event.data(), event.size());
      return !disconnected;
    });
    if (!disconnected) {
      const std::string event = sse_done_event(utf8.finish(), count);
      disconnected = !sink.write(event.data(), event.size());
    }
  } catch (const std::exception& e) {
    state.log(fmt::format("internal error streaming from model '{}': {}", name, e.what()));
    const std::string event = sse_event(fmt::format(R"({{"error":{}}})", json_string(e.what())));
    state.metrics.record_generate_failure(name, FailureReason::Internal, count);
    sink.write(event.data(), event.size());
    sink.done();
    return true;
  } catch (...) {
    state.metrics.record_generate_failure(name, FailureReason::Internal, count);
    return false;
  }
  if (disconnected) {
    state.metrics.record_generate_failure(name, FailureReason::ClientDisconnected, count);
    return false;
  }
  // Counted before the stream ends, so a client that has read the whole stream sees it counted.
  state.metrics.record_generate_success(name, count);
  sink.done();
  return true;
}

void handle_generate(ServerState& state, const Request& req, Response& res,
                     const httplib::ContentReader& reader) {
  const Clock::time_point arrived = Clock::now();
  const ModelEntry* entry = nullptr;
  std::shared_ptr<const ServedModel> model = find_model(state, req, res, &entry);
  if (!model) {
    if (entry)
      state.metrics.record_generate_failure(entry->slot->name(), res.status == 503
                                                                     ? FailureReason::NotReady
                                                                     : FailureReason::BadRequest);
    return;
  }
  const std::string& name = entry->slot->name();
  auto fail = [&](int status, FailureReason reason, std::string_view message,
                  std::int64_t tokens = 0) {
    state.metrics.record_generate_failure(name, reason, tokens);
    send_error(res, status, message);
  };

  const std::optional<std::string> body = read_body(state, req, reader, fail);
  if (!body) return;
  if (!model->is_language_model())
    return fail(
        400, FailureReason::BadRequest,
        fmt::format("model {} is not a language model (it is a {} model): POST "
                    "/v2/models/{}/infer",
                    json_string(name),
                    model->predictor->kind() == PredictionKind::Classification ? "classification"
                                                                               : "regression",
                    name));
  GenerateRequest request;
  try {
    request = parse_generate_request(
        *body, {state.options.max_generate_tokens, state.options.max_elements});
  } catch (const RequestError& e) {
    return fail(e.status(), FailureReason::BadRequest, e.what());
  }
  std::vector<std::int64_t> prompt;
  try {
    prompt = model->tokenizer->encode(request.prompt);
  } catch (const Error& e) {
    return fail(400, FailureReason::BadRequest, fmt::format("\"prompt\": {}", e.what()));
  }

  if (request.stream) {
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // proxies: pass each event on at once
    res.set_chunked_content_provider(
        "text/event-stream", [&state, model, prompt = std::move(prompt),
                              request = std::move(request)](std::size_t, httplib::DataSink& sink) {
          return stream_generation(state, model, prompt, request, sink);
        });
    return;
  }

  // The whole text in one answer, within the request timeout.
  const Clock::time_point deadline = arrived + state.options.request_timeout;
  Utf8Stream utf8;
  std::string text;
  std::int64_t count = 0;
  bool timed_out = false;
  try {
    const SamplingOptions sampling{request.temperature, request.top_k, request.seed};
    generate(*model->gpt, prompt, request.max_tokens, sampling, [&](std::int64_t token) {
      ++count;
      text += utf8.push(model->tokenizer->token_bytes(token));
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
  res.set_content(answer.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), kJson);
  state.metrics.record_generate_success(name, count);
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
  http.Post(std::string(kModelPath) + "/infer",
            [&state](const Request& req, Response& res, const httplib::ContentReader& reader) {
              handle_infer(state, req, res, reader);
            });
  http.Post(std::string(kModelPath) + "/generate",
            [&state](const Request& req, Response& res, const httplib::ContentReader& reader) {
              handle_generate(state, req, res, reader);
            });
  http.Get("/metrics", [&state](const Request&, Response& res) {
    res.set_content(state.metrics.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace lathe::serve
