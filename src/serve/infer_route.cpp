// POST /v2/models/{name}/infer: parse the request against the model's signature, queue it for
// the model's batcher, and answer with the rows the batch gave it.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <mutex>

#include "src/serve/http_support.h"
#include "src/serve/infer_request.h"

namespace lathe::serve {
namespace {

void append_float(std::string& out, float value) {
  if (std::isfinite(value))
    fmt::format_to(std::back_inserter(out), "{}", value);
  else
    out += "null";  // JSON has no NaN or infinity
}

// The response body of a successful inference.
std::string infer_response(const InferenceModel& model, const InferRequest& request,
                           const std::vector<float>& outputs) {
  const bool classification = model.classification();
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
    for (const std::int64_t dim : model.output_shape()) out += fmt::format(",{}", dim);
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
    const std::int64_t classes = model.output_size();
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

// Bodies larger than this are parsed on a worker thread, not on the event thread that serves
// other connections too.
constexpr std::size_t kInlineBodyBytes = 256 << 10;

// The answer to an inference the batcher ran, or the reason it failed.
void answer_job(ServerState& state, const std::string& name, const InferenceModel& model,
                const InferRequest& request, JobResult result, const Reply& reply) {
  if (result.status != 200) {
    const FailureReason reason = result.status == 504   ? FailureReason::Timeout
                                 : result.status == 503 ? FailureReason::ShuttingDown
                                                        : FailureReason::Internal;
    state.metrics.record_infer_failure(name, reason);
    return reply.send(error_response(result.status, result.error));
  }
  Response answer = json_response(infer_response(model, request, result.outputs));
  state.metrics.record_infer_success(name);  // before the client can see the answer
  reply.send(std::move(answer));
}

// Parses the body against the model's signature and queues it for the model's batcher.
void admit(ServerState& state, const ModelEntry& entry, std::shared_ptr<const ServedModel> model,
           std::string body, const Reply& reply) {
  const Clock::time_point arrived = Clock::now();
  const std::string& name = entry.slot->name();
  auto fail = [&](int status, FailureReason reason, std::string_view message) {
    state.metrics.record_infer_failure(name, reason);
    reply.send(error_response(status, message));
  };
  const InferenceModel* inference = model->inference();
  if (!inference)
    return fail(
        400, FailureReason::BadRequest,
        fmt::format("model {} is a {}: POST /v2/models/{}/{}; /infer serves "
                    "classifiers and regression models",
                    json_string(name), task_in_words(model->task()), name, model->endpoint()));

  auto request = std::make_shared<InferRequest>();
  try {
    // The JSON reader's index takes 4 bytes per byte of body besides a padded copy: bodies
    // beyond 8 MB are read one at a time, so that many at once cannot multiply the memory the
    // bodies themselves take by five.
    static std::mutex large_bodies;
    std::unique_lock one_large_body(large_bodies, std::defer_lock);
    if (body.size() > (std::size_t{8} << 20)) one_large_body.lock();
    const RequestLimits limits{state.options.max_json_depth, state.options.max_elements};
    *request = parse_infer_request(body, inference->signature_for_requests(), limits);
  } catch (const RequestError& e) {
    return fail(e.status(), FailureReason::BadRequest, e.what());
  }
  body = std::string();  // the parsed floats are all that is needed now
  if (request->table) {
    try {
      request->data = inference->encode(*request->table);
    } catch (const Error& e) {
      return fail(400, FailureReason::BadRequest, e.what());
    }
    request->table.reset();
  }

  auto job = std::make_shared<InferenceJob>();
  job->model = model;
  job->rows = request->batch;
  job->inputs = std::move(request->data);
  job->enqueued = Clock::now();
  // Whichever comes first answers: the batcher, or the deadline. The answer is in place before
  // the deadline is set, which may have passed already while a large body was parsed.
  const auto timer = std::make_shared<Deadlines::Timer>();
  job->on_answer = [&state, &name, model, request, timer, reply](JobResult result) {
    state.deadlines.cancel(timer);
    answer_job(state, name, *model->inference(), *request, std::move(result), reply);
  };
  const std::weak_ptr<InferenceJob> waiting = job;
  state.deadlines.add(timer, arrived + state.options.request_timeout, [&state, name, waiting] {
    if (const auto expired = waiting.lock())
      expired->answer({504,
                       fmt::format("no answer from model {} within {} ms (--request-timeout-ms)",
                                   json_string(name), state.options.request_timeout.count()),
                       {}});
  });

  switch (entry.batcher->submit(job)) {
    case Batcher::Submitted::Queued:
      return;
    case Batcher::Submitted::QueueFull: {
      state.deadlines.cancel(timer);
      state.metrics.record_infer_failure(name, FailureReason::QueueFull);
      Response full = error_response(
          503, fmt::format("the queue of model {} is full ({} requests waiting, --max-queue); "
                           "retry later",
                           json_string(name), state.options.max_queue));
      full.headers.push_back({"Retry-After", "1"});
      return reply.send(std::move(full));
    }
    case Batcher::Submitted::Stopped:
      state.deadlines.cancel(timer);
      return fail(503, FailureReason::ShuttingDown, "the server is shutting down");
  }
}

}  // namespace

void handle_infer(ServerState& state, Request& req, const ModelPath& path, Reply reply) {
  const ModelEntry* entry = nullptr;
  Response refusal;
  std::shared_ptr<const ServedModel> model = find_model(state, path, refusal, &entry);
  if (!model) {
    if (entry) state.metrics.record_infer_failure(entry->slot->name(), refusal_reason(refusal));
    return reply.send(std::move(refusal));
  }
  if (req.body.size() <= kInlineBodyBytes)
    return admit(state, *entry, std::move(model), std::move(req.body), reply);
  run_on_worker(
      state, reply,
      [&state, entry, model = std::move(model), body = std::move(req.body), reply]() mutable {
        admit(state, *entry, std::move(model), std::move(body), reply);
      });
}

}  // namespace lathe::serve
