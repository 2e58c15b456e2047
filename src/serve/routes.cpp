// Routes of the Open Inference Protocol v2 REST API (plus /metrics). Every error is answered
// with a JSON body {"error": "..."}; nothing a client sends can throw past a handler.
#include "src/serve/routes.h"

#include <fmt/format.h>
#include <httplib.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <nlohmann/json.hpp>

#include "lathe/version.h"
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

  // The body, at most max_body_bytes after decompression (httplib refuses a larger
  // Content-Length before any of it is read).
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
                    req.get_header_value<std::uint64_t>("Content-Length") > limit))
    return fail(413, FailureReason::BadRequest,
                fmt::format("the request body is larger than {} bytes (--max-body-bytes)", limit));
  if (!complete) return fail(400, FailureReason::BadRequest, "the request body could not be read");

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

// 404 for paths that exist nowhere, 405 for a known path asked with the wrong method.
void describe_unrouted(const Request& req, Response& res) {
  const bool infer_path = Metrics::endpoint_of("POST", req.path) == "infer";
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
    const bool infer = req.method == "POST" && Metrics::endpoint_of("POST", req.path) == "infer";
    if (!infer && (req.has_header("Transfer-Encoding") || req.has_header("Content-Encoding"))) {
      res.set_header("Connection", "close");
      send_error(res, 400,
                 fmt::format("{} {} takes no request body; only POST "
                             "/v2/models/{{name}}/infer does",
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
  http.Get("/metrics", [&state](const Request&, Response& res) {
    res.set_content(state.metrics.text(), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace lathe::serve
