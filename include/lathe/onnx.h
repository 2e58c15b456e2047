#pragma once
// Export of a saved model to ONNX, so ONNX Runtime (or any ONNX consumer) can run it without
// lathe. For a classifier or regression model the exported graph takes the same raw inputs as
// Predictor::predict (the bundle's preprocessing is part of the graph) and gives the same outputs:
//
//   input          float32 [N, input_shape...]   raw values, as the training data was read
//   probabilities  float32 [N, classes]          classification: softmax of the logits
//   logits         float32 [N, classes]          classification: the model's outputs
//   output         float32 [N, outputs]          regression: the model's outputs
//
// A model trained on a table (whose encoding is more than its numeric columns as they are) takes
// one input per column instead of `input`, [N, 1]: float32 for a numeric column (NaN for a
// missing value), string for a categorical one; the graph encodes them as lathe does (imputation,
// missing indicators, one-hot through ONNX-ML's OneHotEncoder, operator set ai.onnx.ml 1).
//
// A GPT language model (src/onnx/onnx_export_gpt.cpp) computes what GPT::forward does:
//
//   tokens         int64   [N, T]                token ids, T <= block_size
//   logits         float32 [N, T, vocab_size]    next-token logits at every position
//
// with T a second symbolic dimension; its tokenizer is kept in metadata "lathe.tokenizer".
//
// N is the symbolic batch dimension "N". The model uses ONNX IR version 8 and the default
// operator set, version 17 (what onnx 1.12's checker and ONNX Runtime both accept), and keeps
// lathe's metadata (classes, task, preprocessing, architecture, metrics) in metadata_props.
// Layers are exported through a table with one small function per layer type
// (src/onnx/onnx_export.cpp); a layer type without an entry is an error naming it.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "lathe/bundle.h"
#include "lathe/predict.h"

namespace lathe {

inline constexpr std::int64_t kOnnxIrVersion = 8;
inline constexpr std::int64_t kOnnxOpsetVersion = 17;
inline constexpr std::int64_t kOnnxMlOpsetVersion = 1;  // ai.onnx.ml, for table encodings

// A graph input or output: its name and its dimensions, the batch one as "N".
struct OnnxTensorInfo {
  std::string name;
  std::vector<std::string> shape;
  std::string type = "float32";  // or "int64" (a language model's tokens), or "string"
  std::string describe() const;  // "input [N,28,28]"
};

struct OnnxModel {
  std::string bytes;                   // the serialized ModelProto
  OnnxTensorInfo input;                // the first of `inputs`
  std::vector<OnnxTensorInfo> inputs;  // "input", a table model's columns, or "tokens"
  std::vector<OnnxTensorInfo> outputs;
  std::size_t nodes = 0;
  std::size_t initializers = 0;
};

// Builds the ONNX model of a loaded bundle. Throws lathe::Error for a layer without an ONNX form
// ("export: layer 3 'foo' has no ONNX form yet") or a model over protobuf's 2 GiB limit.
OnnxModel build_onnx_model(const Predictor& predictor);

// build_onnx_model, then writes the bytes to `path` atomically (temporary file, fsync, rename).
OnnxModel export_onnx(const Predictor& predictor, const std::filesystem::path& path);

// The same for any loaded bundle: a language model (a GPT; another architecture is an error
// naming it) as tokens -> logits, anything else through Predictor, so a caller needs no
// model-family branch of its own.
OnnxModel build_onnx_model(const LoadedBundle& bundle);
OnnxModel export_onnx(const LoadedBundle& bundle, const std::filesystem::path& path);

// The layer types (registry names, plus "sequential") that have an ONNX form.
std::vector<std::string> onnx_layer_types();

}  // namespace lathe
