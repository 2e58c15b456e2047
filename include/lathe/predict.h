#pragma once
// A saved model ready to answer requests: raw inputs in (as the training data was read, before
// preprocessing), probabilities or regression values out. Shared by `lathe predict`, `lathe
// serve` and the ONNX export tests.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "lathe/inference.h"
#include "lathe/io.h"
#include "lathe/table.h"
#include "lathe/tensor.h"

namespace lathe {

enum class PredictionKind { Classification, Regression };

class Predictor {
 public:
  // With InferencePrecision::Int8 the model's linear layers run quantized (see inference.h); a
  // model without an inference plan (not a Sequential with float32 weights) is then refused.
  explicit Predictor(LoadedBundle bundle,
                     InferencePrecision precision = InferencePrecision::Float32);
  static Predictor load(const std::filesystem::path& bundle_path,
                        InferencePrecision precision = InferencePrecision::Float32);

  // Raw float32 inputs [N, input_shape...] (or [N, input_features]) -> preprocessing -> model.
  // Classification: softmax probabilities [N, classes]. Regression: model outputs [N, outputs].
  // Runs without recording gradients; safe to call from one thread at a time per Predictor.
  Tensor predict(const Tensor& raw_inputs) const;
  // A model trained on a table (encoding() set): rows with the original columns, strings
  // included, encoded as in training, then predict(). Errors name the cell (table.where).
  Tensor predict_rows(const RawTable& table) const;

  // How a model trained on a CSV table encodes its rows; null for other models (and for bundles
  // from before encodings were recorded, whose inputs are the features themselves).
  const TableEncoding* encoding() const { return encoding_.get(); }

  PredictionKind kind() const { return kind_; }
  const Shape& input_shape() const { return input_shape_; }  // one example, e.g. {28, 28}
  std::int64_t input_features() const { return input_features_; }
  // One name per class ("0".."9" when the bundle records none); empty for regression.
  const std::vector<std::string>& class_names() const { return class_names_; }
  const BundleInfo& info() const { return bundle_.info; }
  const Module& model() const { return *bundle_.model; }

 private:
  LoadedBundle bundle_;
  std::optional<InferencePlan> plan_;  // the model's fast path, when it has one
  // Whether plan_ took the preprocessing into its first linear layer (fold_input_affine), so
  // predict hands it the raw inputs: at batch 1000 on the seed MLP the preprocessing's own pass
  // was 8% of a one-thread call.
  bool preprocessing_folded_ = false;
  std::shared_ptr<const TableEncoding> encoding_;
  PredictionKind kind_;
  Shape input_shape_;
  std::int64_t input_features_;
  std::vector<std::string> class_names_;
};

// Index of the largest probability in each row of a [N, classes] tensor.
std::vector<std::int64_t> argmax_rows(const Tensor& probabilities);

}  // namespace lathe
