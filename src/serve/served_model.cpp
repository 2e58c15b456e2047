#include "src/serve/served_model.h"

#include <fmt/format.h>

#include <algorithm>

#include "lathe/error.h"
#include "lathe/io.h"

namespace lathe::serve {
namespace {

nlohmann::json batch_shape(const Shape& example) {
  nlohmann::json shape = nlohmann::json::array({-1});
  for (const std::int64_t dim : example) shape.push_back(dim);
  return shape;
}

nlohmann::json tensor_metadata(const std::string& name, const char* datatype,
                               nlohmann::json shape) {
  return {{"name", name}, {"datatype", datatype}, {"shape", std::move(shape)}};
}

}  // namespace

std::string task_in_words(const std::string& task) {
  return task == "language_model" ? "language model" : task + " model";
}

nlohmann::json ServedModel::signature() const {
  return {{"task", task()}, {"inputs", inputs()}, {"outputs", outputs()}};
}

std::string ServedModel::metadata() const {
  const nlohmann::json metadata = {{"name", name},         {"versions", {std::to_string(version)}},
                                   {"platform", "lathe"},  {"inputs", inputs()},
                                   {"outputs", outputs()}, {"parameters", parameters()}};
  return metadata.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

InferenceModel::InferenceModel(std::shared_ptr<const Predictor> predictor)
    : predictor_(std::move(predictor)) {
  signature_.input_shape = predictor_->input_shape();
  features_ = predictor_->input_features();
  if (const TableEncoding* encoding = predictor_->encoding())
    for (const EncodedColumn& column : encoding->columns())
      signature_.columns.push_back({column.name, column.kind == EncodedColumn::Kind::Numeric});
  signature_.output_names = classification()
                                ? std::vector<std::string>{kProbabilitiesOutput, kClassIndexOutput}
                                : std::vector<std::string>{kValuesOutput};
  // One example through the whole pipeline: the output shape, and proof the model runs.
  const Tensor probe = predictor_->predict(Tensor::zeros({1, features_}));
  if (probe.dim() < 1 || probe.size(0) != 1)
    throw Error(
        fmt::format("the model maps 1 example to an output of shape {}", shape_str(probe.shape())));
  output_shape_.assign(probe.shape().begin() + 1, probe.shape().end());
  output_size_ = probe.numel();
}

bool InferenceModel::classification() const {
  return predictor_->kind() == PredictionKind::Classification;
}

std::string InferenceModel::task() const {
  return classification() ? "classification" : "regression";
}

std::string InferenceModel::describe() const {
  const std::string input =
      signature_.columns.empty()
          ? shape_str(predictor_->input_shape())
          : fmt::format("{} columns ({} features)", signature_.columns.size(), features_);
  if (classification())
    return fmt::format("classification, input {}, {} classes", input,
                       predictor_->class_names().size());
  return fmt::format("regression, input {}, output {}", input, shape_str(output_shape_));
}

// A model trained on a table lists its columns, each an input of its own: BYTES for text
// (categorical) columns, FP32 for numeric ones.
nlohmann::json InferenceModel::inputs() const {
  if (signature_.columns.empty())
    return nlohmann::json::array(
        {tensor_metadata(signature_.input_name, "FP32", batch_shape(signature_.input_shape))});
  nlohmann::json inputs = nlohmann::json::array();
  for (const ColumnInput& column : signature_.columns)
    inputs.push_back(tensor_metadata(column.name, column.numeric ? "FP32" : "BYTES",
                                     nlohmann::json::array({-1})));
  return inputs;
}

std::vector<float> InferenceModel::encode(const RawTable& table) const {
  const Tensor features = predictor_->encoding()->transform(table);
  return std::vector<float>(features.data<float>(), features.data<float>() + features.numel());
}

nlohmann::json InferenceModel::outputs() const {
  if (!classification())
    return nlohmann::json::array(
        {tensor_metadata(kValuesOutput, "FP32", batch_shape(output_shape_))});
  return nlohmann::json::array(
      {tensor_metadata(kProbabilitiesOutput, "FP32", batch_shape(output_shape_)),
       tensor_metadata(kClassIndexOutput, "INT64", nlohmann::json::array({-1}))});
}

nlohmann::json InferenceModel::parameters() const {
  nlohmann::json parameters = {{"task", task()}};
  if (classification()) parameters["classes"] = predictor_->class_names();
  if (const TableEncoding* encoding = predictor_->encoding()) {
    nlohmann::json columns = nlohmann::json::array();
    for (const EncodedColumn& column : encoding->columns()) {
      nlohmann::json c = {
          {"name", column.name},
          {"type", column.kind == EncodedColumn::Kind::Numeric ? "numeric" : "categorical"},
          {"missing", column.impute == "none" ? "error" : "imputed"}};
      if (column.kind == EncodedColumn::Kind::Categorical) c["categories"] = column.categories;
      columns.push_back(std::move(c));
    }
    parameters["columns"] = std::move(columns);
    parameters["missing_values"] = "null in data";
    if (std::all_of(signature_.columns.begin(), signature_.columns.end(),
                    [](const ColumnInput& c) { return c.numeric; }))
      parameters["also_accepts"] =
          tensor_metadata(signature_.input_name, "FP32",
                          {-1, static_cast<std::int64_t>(signature_.columns.size())});
  }
  return parameters;
}

GenerationModel::GenerationModel(std::shared_ptr<CausalLanguageModel> model,
                                 std::shared_ptr<const Tokenizer> tokenizer)
    : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {
  // One token from a one-token prompt: proof the model runs.
  lathe::generate(*model_, {0}, 1, SamplingOptions{.temperature = 0});
}

std::string GenerationModel::describe() const {
  return fmt::format(
      "language model ({}), {} parameters, context {}, {} tokenizer of {} tokens; POST "
      "/v2/models/{}/generate",
      model_->type(), model_->parameter_count(), model_->context_size(), tokenizer_->kind(),
      model_->vocab_size(), name);
}

// A language model takes a prompt and returns text, both strings (BYTES in the protocol's terms).
nlohmann::json GenerationModel::inputs() const {
  return nlohmann::json::array({tensor_metadata("prompt", "BYTES", nlohmann::json::array({1}))});
}

nlohmann::json GenerationModel::outputs() const {
  return nlohmann::json::array({tensor_metadata("text", "BYTES", nlohmann::json::array({1}))});
}

nlohmann::json GenerationModel::parameters() const {
  nlohmann::json parameters = {{"task", task()},
                               {"endpoint", endpoint()},
                               {"tokenizer", tokenizer_->kind()},
                               {"vocab_size", model_->vocab_size()},
                               {"context_size", model_->context_size()},
                               {"architecture", model_->type()},
                               {"parameter_count", model_->parameter_count()}};
  // The architecture's own arguments (a GPT's n_layer, n_head, ...), as its bundle holds them.
  const nlohmann::json spec = model_->spec();
  for (const auto& [key, value] : spec.items())
    if (key != "type" && !parameters.contains(key)) parameters[key] = value;
  return parameters;
}

std::vector<std::int64_t> GenerationModel::generate(
    const std::vector<std::int64_t>& prompt, std::int64_t max_tokens,
    const SamplingOptions& sampling, const std::function<bool(std::int64_t)>& on_token) const {
  return lathe::generate(*model_, prompt, max_tokens, sampling, on_token);
}

std::shared_ptr<ServedModel> load_served_model(const std::filesystem::path& path,
                                               InferencePrecision precision) {
  LoadedBundle bundle = load_bundle(path);
  try {
    if (is_language_model(bundle.info)) {
      LanguageModel language_model = as_language_model(bundle, path.string());
      return std::make_shared<GenerationModel>(std::move(language_model.model),
                                               std::move(language_model.tokenizer));
    }
    return std::make_shared<InferenceModel>(
        std::make_shared<const Predictor>(std::move(bundle), precision));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(path.string())) throw;
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  }
}

}  // namespace lathe::serve
