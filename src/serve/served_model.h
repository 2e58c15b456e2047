#pragma once
// One loaded version of a model, as every route sees it; never changes once built. What a model
// answers depends on its task, not its architecture: classifiers and regression models answer
// POST .../infer (through the batcher), language models POST .../generate. load_served_model
// picks the kind from the bundle's task, so a program's own registered module is served like a
// built-in one.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/inference.h"
#include "lathe/language_model.h"
#include "lathe/predict.h"
#include "lathe/text.h"
#include "src/serve/infer_request.h"

namespace lathe::serve {

// Output names, as documented in docs/deploy/serve.md.
inline constexpr const char* kProbabilitiesOutput = "probabilities";  // FP32 [N, classes]
inline constexpr const char* kClassIndexOutput = "class_index";       // INT64 [N]
inline constexpr const char* kValuesOutput = "values";                // FP32 [N, outputs...]

class InferenceModel;
class GenerationModel;

class ServedModel {
 public:
  virtual ~ServedModel() = default;
  std::string name;
  std::int64_t version = 0;
  std::string metadata_json;  // the body of GET /v2/models/{name}, set when published

  virtual std::string task() const = 0;      // "classification", "regression", "language_model"
  virtual std::string endpoint() const = 0;  // "infer" or "generate"
  virtual std::string describe() const = 0;  // for the log: what it takes and gives
  // The "inputs" and "outputs" of the protocol's model metadata: what a client relies on. A
  // reload that changes them is refused unless the operator allows it.
  virtual nlohmann::json inputs() const = 0;
  virtual nlohmann::json outputs() const = 0;
  virtual nlohmann::json parameters() const = 0;

  virtual const InferenceModel* inference() const { return nullptr; }
  virtual const GenerationModel* generation() const { return nullptr; }

  // {"task", "inputs", "outputs"}: equal for two versions a client can use alike.
  nlohmann::json signature() const;
  std::string metadata() const;  // the metadata body from the above
};

// A classifier or regression model behind a Predictor: POST .../infer, batched.
class InferenceModel : public ServedModel {
 public:
  explicit InferenceModel(std::shared_ptr<const Predictor> predictor);
  std::string task() const override;
  std::string endpoint() const override { return "infer"; }
  std::string describe() const override;
  nlohmann::json inputs() const override;
  nlohmann::json outputs() const override;
  nlohmann::json parameters() const override;
  const InferenceModel* inference() const override { return this; }

  bool classification() const;
  // Raw inputs [rows, features] -> outputs [rows, output_shape...], float32.
  Tensor predict(const Tensor& inputs) const { return predictor_->predict(inputs); }
  // A model trained on a table: a request's rows (InferRequest::table) to the features predict()
  // takes, row-major; errors (lathe::Error) name the request field.
  std::vector<float> encode(const RawTable& table) const;
  const ModelSignature& signature_for_requests() const { return signature_; }
  std::int64_t features() const { return features_; }          // inputs per example
  const Shape& output_shape() const { return output_shape_; }  // of one example
  std::int64_t output_size() const { return output_size_; }    // numel of output_shape

 private:
  std::shared_ptr<const Predictor> predictor_;
  ModelSignature signature_;
  std::int64_t features_ = 0;
  Shape output_shape_;
  std::int64_t output_size_ = 0;
};

// A causal language model and its tokenizer: POST .../generate. generate() only reads a model in
// eval mode, so requests share it.
class GenerationModel : public ServedModel {
 public:
  GenerationModel(std::shared_ptr<CausalLanguageModel> model,
                  std::shared_ptr<const Tokenizer> tokenizer);
  std::string task() const override { return "language_model"; }
  std::string endpoint() const override { return "generate"; }
  std::string describe() const override;
  nlohmann::json inputs() const override;
  nlohmann::json outputs() const override;
  nlohmann::json parameters() const override;
  const GenerationModel* generation() const override { return this; }

  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The new tokens after `prompt`; on_token may stop it early by returning false.
  std::vector<std::int64_t> generate(const std::vector<std::int64_t>& prompt,
                                     std::int64_t max_tokens, const SamplingOptions& sampling,
                                     const std::function<bool(std::int64_t)>& on_token) const;

 private:
  std::shared_ptr<CausalLanguageModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
};

// "classification model", "regression model", "language model": a task in a sentence.
std::string task_in_words(const std::string& task);

// Loads a bundle and builds the served model its task calls for, with one example run through it
// (proof it runs). Errors name the file.
std::shared_ptr<ServedModel> load_served_model(const std::filesystem::path& path,
                                               InferencePrecision precision);

}  // namespace lathe::serve
