// Predictor: a loaded bundle plus what its metadata says about inputs and outputs.
#include <fmt/format.h>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/predict.h"

namespace lathe {
namespace {

Shape recorded_input_shape(const nlohmann::json& task, const std::string& where) {
  if (!task.contains("input_shape") || !task["input_shape"].is_array())
    throw Error(fmt::format("{}: metadata lathe.task has no input_shape", where));
  Shape shape;
  for (const auto& dim : task["input_shape"]) {
    if (!dim.is_number_integer() || dim.get<std::int64_t>() <= 0)
      throw Error(
          fmt::format("{}: lathe.task input_shape has a dimension that is not a positive "
                      "integer: {}",
                      where, task["input_shape"].dump()));
    shape.push_back(dim.get<std::int64_t>());
  }
  if (shape.empty()) throw Error(fmt::format("{}: lathe.task input_shape is empty", where));
  return shape;
}

// Predictor takes classifiers and regression models; a language model is refused before anything
// is built for it.
LoadedBundle not_a_language_model(LoadedBundle bundle) {
  if (is_language_model(bundle.info))
    throw Error(
        "a language model, not a classifier or regression model: use `lathe generate`, or "
        "`lathe serve` and POST /v2/models/{name}/generate");
  return bundle;
}

}  // namespace

Predictor::Predictor(LoadedBundle bundle, InferencePrecision precision)
    : bundle_(not_a_language_model(std::move(bundle))),
      // float32 falls back to the model's own forward; another precision needs the plan.
      plan_(precision == InferencePrecision::Float32
                ? InferencePlan::compile(bundle_.model)
                : InferencePlan::require(bundle_.model, precision)) {
  if (plan_) {
    const Preprocessing::Affine affine = bundle_.info.preprocessing.affine();
    preprocessing_folded_ = plan_->fold_input_affine(affine.a, affine.b);
  }
  const nlohmann::json& task = bundle_.info.task;
  const std::string where = "bundle";
  if (task.contains("task") && !task["task"].is_string())
    throw Error(fmt::format("{}: lathe.task \"task\" is not a string", where));
  kind_ = task.value("task", "classification") == "regression" ? PredictionKind::Regression
                                                               : PredictionKind::Classification;
  input_shape_ = recorded_input_shape(task, where);
  input_features_ = shape_numel(input_shape_);
  if (task.contains("encoding")) {
    try {
      encoding_ = std::make_shared<const TableEncoding>(TableEncoding::from_json(task["encoding"]));
    } catch (const Error& e) {
      throw Error(fmt::format("{}: lathe.task {}", where, e.what()));
    }
    if (encoding_->width() != input_features_ || input_shape_.size() != 1)
      throw Error(
          fmt::format("{}: lathe.task: the encoding gives {} features but input_shape is {}", where,
                      encoding_->width(), shape_str(input_shape_)));
    if (encoding_->classification() != (kind_ == PredictionKind::Classification))
      throw Error(fmt::format("{}: lathe.task: the encoding is for {} but the task is {}", where,
                              encoding_->classification() ? "classification" : "regression",
                              task.value("task", "classification")));
  }
  if (kind_ == PredictionKind::Classification) {
    // The class count is what the model outputs for one example.
    NoGradGuard no_grad;
    Shape probe_shape{1};
    probe_shape.insert(probe_shape.end(), input_shape_.begin(), input_shape_.end());
    const Tensor out = bundle_.model->forward(Tensor::zeros(probe_shape));
    const std::int64_t classes = out.size(-1);
    if (task.contains("classes") && task["classes"].is_array()) {
      for (const auto& name : task["classes"])
        class_names_.push_back(name.is_string() ? name.get<std::string>() : name.dump());
      if (static_cast<std::int64_t>(class_names_.size()) != classes)
        throw Error(fmt::format("{}: lathe.task lists {} class names but the model has {} outputs",
                                where, class_names_.size(), classes));
    } else {
      for (std::int64_t c = 0; c < classes; ++c) class_names_.push_back(std::to_string(c));
    }
    if (encoding_ && encoding_->classes() != class_names_)
      throw Error(
          fmt::format("{}: lathe.task: the encoding's classes differ from \"classes\"", where));
  }
}

Predictor Predictor::load(const std::filesystem::path& bundle_path, InferencePrecision precision) {
  LoadedBundle bundle = load_bundle(bundle_path);
  try {
    return Predictor(std::move(bundle), precision);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", bundle_path.string(), e.what()));
  }
}

Tensor Predictor::predict(const Tensor& raw_inputs) const {
  if (raw_inputs.dim() < 1 || raw_inputs.numel() != raw_inputs.size(0) * input_features_)
    throw Error(fmt::format("predict: inputs of shape {} do not hold whole examples of shape {}",
                            shape_str(raw_inputs.shape()), shape_str(input_shape_)));
  Shape batch_shape{raw_inputs.size(0)};
  batch_shape.insert(batch_shape.end(), input_shape_.begin(), input_shape_.end());
  NoGradGuard no_grad;
  const Tensor shaped = reshape(raw_inputs, batch_shape);
  const Tensor inputs = !preprocessing_folded_ ? bundle_.info.preprocessing.apply(shaped)
                        : shaped.dtype() == DType::Float32 ? shaped
                                                           : shaped.to(DType::Float32);
  const Tensor outputs = plan_ ? plan_->forward(inputs) : bundle_.model->forward(inputs);
  return kind_ == PredictionKind::Classification ? softmax(outputs, -1) : outputs;
}

Tensor Predictor::predict_rows(const RawTable& table) const {
  if (!encoding_)
    throw Error(
        "predict: this model was not trained on a table with a recorded encoding; give it "
        "its features as numbers");
  return predict(encoding_->transform(table));
}

std::vector<std::int64_t> argmax_rows(const Tensor& probabilities) {
  const std::int64_t rows = probabilities.size(0), columns = probabilities.size(-1);
  const Tensor p =
      probabilities.dtype() == DType::Float32 ? probabilities : probabilities.to(DType::Float32);
  const float* data = p.data<float>();
  std::vector<std::int64_t> best(rows, 0);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 1; c < columns; ++c)
      if (data[r * columns + c] > data[r * columns + best[r]]) best[r] = c;
  return best;
}

}  // namespace lathe
