// Loading and swapping served models; the polling thread behind --watch.
#include "src/serve/model_slot.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"

namespace lathe::serve {
namespace {

nlohmann::json batch_shape(const Shape& example) {
  nlohmann::json shape = nlohmann::json::array({-1});
  for (const std::int64_t dim : example) shape.push_back(dim);
  return shape;
}

// A language model takes a prompt and returns text, both strings (BYTES in the protocol's terms),
// through POST .../generate rather than .../infer.
std::string language_model_metadata(const ServedModel& model) {
  const GPTConfig& config = model.gpt->config();
  const nlohmann::json metadata = {
      {"name", model.name},
      {"versions", {std::to_string(model.version)}},
      {"platform", "lathe"},
      {"inputs", {{{"name", "prompt"}, {"datatype", "BYTES"}, {"shape", {1}}}}},
      {"outputs", {{{"name", "text"}, {"datatype", "BYTES"}, {"shape", {1}}}}},
      {"parameters",
       {{"task", "language_model"},
        {"endpoint", "generate"},
        {"tokenizer", model.tokenizer->kind()},
        {"vocab_size", config.vocab_size},
        {"block_size", config.block_size},
        {"n_layer", config.n_layer},
        {"n_head", config.n_head},
        {"n_embd", config.n_embd},
        {"parameter_count", model.gpt->parameter_count()}}}};
  return metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string metadata_for(const ServedModel& model) {
  if (model.is_language_model()) return language_model_metadata(model);
  const Predictor& predictor = *model.predictor;
  nlohmann::json outputs = nlohmann::json::array();
  nlohmann::json parameters = {{"task", predictor.kind() == PredictionKind::Classification
                                            ? "classification"
                                            : "regression"}};
  if (predictor.kind() == PredictionKind::Classification) {
    outputs.push_back({{"name", kProbabilitiesOutput},
                       {"datatype", "FP32"},
                       {"shape", batch_shape(model.output_shape)}});
    outputs.push_back(
        {{"name", kClassIndexOutput}, {"datatype", "INT64"}, {"shape", nlohmann::json{-1}}});
    parameters["classes"] = predictor.class_names();
  } else {
    outputs.push_back({{"name", kValuesOutput},
                       {"datatype", "FP32"},
                       {"shape", batch_shape(model.output_shape)}});
  }
  const nlohmann::json metadata = {{"name", model.name},
                                   {"versions", {std::to_string(model.version)}},
                                   {"platform", "lathe"},
                                   {"inputs",
                                    {{{"name", model.signature.input_name},
                                      {"datatype", "FP32"},
                                      {"shape", batch_shape(model.signature.input_shape)}}}},
                                   {"outputs", outputs},
                                   {"parameters", parameters}};
  return metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

FileStamp stamp_of(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return {};
  return {true, static_cast<std::uintmax_t>(info.st_size),
          static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec,
          info.st_ino, info.st_dev};
}

ModelSlot::ModelSlot(std::string name, std::filesystem::path path, InferencePrecision precision)
    : name_(std::move(name)), path_(std::move(path)), precision_(precision) {}

std::shared_ptr<const ServedModel> ModelSlot::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

bool ModelSlot::changed_on_disk() const {
  const FileStamp now = stamp_of(path_);
  std::lock_guard lock(mutex_);
  return !(now == attempted_);
}

std::shared_ptr<const ServedModel> ModelSlot::load() {
  std::lock_guard one_at_a_time(load_mutex_);
  {
    // Stamped before reading: a write that lands during the load changes the stamp again, and
    // the next poll loads once more.
    const FileStamp stamp = stamp_of(path_);
    std::lock_guard lock(mutex_);
    attempted_ = stamp;
  }
  auto model = std::make_shared<ServedModel>();
  model->name = name_;
  LoadedBundle bundle = load_bundle(path_);
  if (is_language_model(bundle.info)) {
    LanguageModel language_model = as_language_model(bundle, path_.string());
    model->gpt = std::move(language_model.model);
    model->tokenizer = std::move(language_model.tokenizer);
    // One token from a one-token prompt: proof the model runs.
    generate(*model->gpt, {0}, 1, SamplingOptions{.temperature = 0});
    return publish(std::move(model));
  }
  try {
    model->predictor = std::make_shared<const Predictor>(std::move(bundle), precision_);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path_.string(), e.what()));
  }
  const Predictor& predictor = *model->predictor;
  model->signature.input_shape = predictor.input_shape();
  model->features = predictor.input_features();
  if (predictor.kind() == PredictionKind::Classification)
    model->signature.output_names = {kProbabilitiesOutput, kClassIndexOutput};
  else
    model->signature.output_names = {kValuesOutput};
  {
    // One example through the whole pipeline: the output shape, and proof the model runs.
    const Tensor probe = predictor.predict(Tensor::zeros({1, model->features}));
    if (probe.dim() < 1 || probe.size(0) != 1)
      throw Error(fmt::format("{}: the model maps 1 example to an output of shape {}",
                              path_.string(), shape_str(probe.shape())));
    model->output_shape.assign(probe.shape().begin() + 1, probe.shape().end());
    model->output_size = probe.numel();
  }
  return publish(std::move(model));
}

std::shared_ptr<const ServedModel> ModelSlot::publish(std::shared_ptr<ServedModel> model) {
  std::lock_guard lock(mutex_);
  model->version = versions_ + 1;
  model->metadata_json = metadata_for(*model);
  versions_ = model->version;
  current_ = model;
  return model;
}

PeriodicThread::PeriodicThread(std::chrono::milliseconds interval, std::function<void()> tick) {
  thread_ = std::thread([this, interval, tick = std::move(tick)] {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      tick();
      lock.lock();
    }
  });
}

PeriodicThread::~PeriodicThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

}  // namespace lathe::serve
