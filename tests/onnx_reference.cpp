// Writes what the ONNX export tests compare against: a bundle (for the tiny models, built here),
// raw inputs, and lathe's own outputs on them, as raw little-endian float32 files (int64 for a
// language model's tokens) plus a reference.json describing them. tests/onnx_runtime_compare.js
// then runs the exported model in ONNX Runtime on the same inputs and compares.
//
//   onnx_reference tiny-classifier DIR         every layer type, 2-D inputs, standardize
//   onnx_reference tiny-regression DIR         a regression model, standardize
//   onnx_reference tiny-cnn DIR                every image layer, 144 features as [2, 9, 8]
//   onnx_reference tiny-gpt DIR                a GPT language model: tokens [3, 8] -> logits
//   onnx_reference tiny-gpt-nobias DIR         the same without biases in linears and LayerNorms
//   onnx_reference bundle BUNDLE IMAGES DIR    an existing bundle on an IDX images file
//
// DIR gets bundle.safetensors (tiny models), input.bin, one .bin per output and reference.json:
// {"bundle": ..., "input": {"name", "shape", "file", "dtype" ("float32" or "int64")},
//  "outputs": [{"name", "shape", "file", "argmax", "check"}]}.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <iostream>

#include "lathe/lathe.h"

namespace {

using lathe::Shape;
using lathe::Tensor;
using nlohmann::json;

void write_floats(const std::filesystem::path& path, const Tensor& tensor) {
  const Tensor data = tensor.to(lathe::DType::Float32);
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(data.data<float>()),
            static_cast<std::streamsize>(data.numel() * sizeof(float)));
  if (!out) throw lathe::Error(fmt::format("{}: cannot write", path.string()));
}

// Random raw inputs whose features have different offsets and spreads, so per-feature
// standardization matters.
Tensor raw_inputs(std::int64_t n, const Shape& example, lathe::Generator& generator) {
  Shape shape{n};
  shape.insert(shape.end(), example.begin(), example.end());
  Tensor x = Tensor::randn(shape, generator);
  const std::int64_t features = lathe::shape_numel(example);
  float* data = x.data<float>();
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < features; ++f)
      data[i * features + f] = data[i * features + f] * static_cast<float>(1 + f % 5) * 4.0f +
                               static_cast<float>(f % 7) * 3.0f - 6.0f;
  return x;
}

// Every layer type and activation: a Linear on [N, 3, 4] (MatMul form), Flatten, Linear in Gemm
// form with and without bias, both GELUs, Dropout, and a nested Sequential.
json tiny_classifier_layers() {
  return json::array({
      {{"type", "linear"}, {"in", 4}, {"out", 6}},
      {{"type", "tanh"}},
      {{"type", "flatten"}},
      {{"type", "linear"}, {"in", 18}, {"out", 16}},
      {{"type", "relu"}},
      {{"type", "linear"}, {"in", 16}, {"out", 16}, {"bias", false}},
      {{"type", "gelu"}},
      {{"type", "linear"}, {"in", 16}, {"out", 16}},
      {{"type", "gelu"}, {"approximate", "tanh"}},
      {{"type", "dropout"}, {"p", 0.3}},
      {{"type", "sequential"},
       {"layers", json::array({{{"type", "linear"}, {"in", 16}, {"out", 12}},
                               {{"type", "leaky_relu"}, {"negative_slope", 0.2}},
                               {{"type", "linear"}, {"in", 12}, {"out", 12}},
                               {{"type", "sigmoid"}}})}},
      {{"type", "linear"}, {"in", 12}, {"out", 5}},
  });
}

// Every image layer: reshape from flat examples, convolutions with padding, groups, dilation
// and stride, both poolings, batch norm in 2-D and 1-D (with running statistics moved away from
// their initial values), global average pooling.
json tiny_cnn_layers() {
  return json::parse(R"([
    {"type": "reshape", "shape": [2, 9, 8]},
    {"type": "conv2d", "in": 2, "out": 6, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 6},
    {"type": "relu"},
    {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in": 6, "out": 6, "kernel_size": 3, "padding": 2, "dilation": 2, "groups": 2, "bias": false},
    {"type": "avg_pool2d", "kernel_size": 3, "stride": 1, "padding": 1},
    {"type": "conv2d", "in": 6, "out": 8, "kernel_size": 2, "stride": 2},
    {"type": "batch_norm2d", "features": 8, "momentum": 0.5},
    {"type": "global_avg_pool"},
    {"type": "batch_norm1d", "features": 8, "momentum": 0.5},
    {"type": "linear", "in": 8, "out": 5}])");
}

// Builds, saves and returns the path of a tiny bundle, plus the inputs to check it on.
std::filesystem::path make_tiny_bundle(const std::string& kind, const std::filesystem::path& dir,
                                       Tensor& inputs) {
  lathe::Generator generator(42);
  const bool classification = kind != "regression", cnn = kind == "cnn";
  const Shape example = cnn ? Shape{144} : classification ? Shape{3, 4} : Shape{5};
  const json layers = cnn              ? tiny_cnn_layers()
                      : classification ? tiny_classifier_layers()
                                       : json::array({{{"type", "linear"}, {"in", 5}, {"out", 8}},
                                                      {{"type", "relu"}},
                                                      {{"type", "linear"}, {"in", 8}, {"out", 2}}});
  auto model = lathe::make_sequential(layers, generator);
  if (cnn) {
    // A few training-mode passes move the running statistics away from (0, 1).
    lathe::NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) model->forward(Tensor::randn({16, 144}, generator) * 2.0 + 0.5);
    model->eval();
  } else if (classification) {
    // Larger final weights, so the logits spread over several units and softmax is tested on
    // confident rows as well as uncertain ones.
    Tensor last = model->state_dict().at("11.weight");
    for (std::int64_t i = 0; i < last.numel(); ++i) last.data<float>()[i] *= 12.0f;
  }
  lathe::BundleInfo info;
  info.architecture = model->spec();
  info.preprocessing = lathe::Preprocessing::standardize(raw_inputs(500, example, generator),
                                                         classification ? 0.5 : 1.0);
  info.task = {{"task", classification ? "classification" : "regression"},
               {"input_shape", example}};
  if (classification)
    info.task["classes"] = {"cat", "dog", "bird \"quoted\"", "\u00e9l\u00e8ve", "e"};
  else
    info.task["target"] = "y";
  info.metrics = json::object();
  const auto path = dir / "bundle.safetensors";
  lathe::save_bundle(path, *model, info);
  inputs = raw_inputs(256, example, generator);
  return path;
}

void write_int64s(const std::filesystem::path& path, const Tensor& tensor) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(tensor.data<std::int64_t>()),
            static_cast<std::streamsize>(tensor.numel() * sizeof(std::int64_t)));
  if (!out) throw lathe::Error(fmt::format("{}: cannot write", path.string()));
}

// A two-layer GPT over the characters of a short text (20 tokens), block_size 12, every
// parameter redrawn from wide distributions (GPT's own init, std 0.02 with LayerNorms at 1 and
// 0, gives near-uniform attention and logits near 0, which would test little), saved as a
// language-model bundle. Tokens [3, 8]: T < block_size, so the export's slices of the position
// embeddings and of the causal mask matter.
std::filesystem::path make_tiny_gpt(bool bias, const std::filesystem::path& dir, Tensor& tokens) {
  const lathe::CharTokenizer tokenizer = lathe::CharTokenizer::train("abcdefghij klmnopq.,\n");
  lathe::GPTConfig config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 12;
  config.vocab_size = tokenizer.vocab_size();
  config.bias = bias;
  lathe::Generator generator(7);
  lathe::GPT model(config, generator);
  model.eval();
  for (const lathe::NamedTensor& p : model.named_parameters()) {
    Tensor t = p.tensor;
    const bool norm_weight = p.name.find("ln") != std::string::npos && p.name.ends_with("weight");
    lathe::normal_(t, norm_weight ? 1.0 : 0.0, p.name.starts_with("wte") ? 1.0 : 0.3, generator);
  }
  const auto path = dir / "bundle.safetensors";
  lathe::save_language_model(path, model, tokenizer, {{"note", "onnx reference"}});
  tokens = Tensor::empty({3, 8}, lathe::DType::Int64);
  for (std::int64_t i = 0; i < tokens.numel(); ++i)
    tokens.data<std::int64_t>()[i] =
        static_cast<std::int64_t>(generator.below(static_cast<std::uint64_t>(config.vocab_size)));
  return path;
}

// tiny-gpt: tokens.bin (int64) and logits.bin from the bundle as saved.
int run_gpt(bool bias, const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  Tensor tokens;
  const auto bundle_path = make_tiny_gpt(bias, dir, tokens);
  const lathe::LanguageModel lm = lathe::load_language_model(bundle_path);
  lathe::NoGradGuard no_grad;
  const Tensor logits = lm.model->forward(tokens);
  write_int64s(dir / "tokens.bin", tokens);
  write_floats(dir / "logits.bin", logits);
  const json reference = {
      {"bundle", std::filesystem::absolute(bundle_path).string()},
      {"input",
       {{"name", "tokens"}, {"shape", tokens.shape()}, {"file", "tokens.bin"}, {"dtype", "int64"}}},
      {"outputs", json::array({{{"name", "logits"},
                                {"shape", logits.shape()},
                                {"file", "logits.bin"},
                                {"argmax", true},
                                {"check", "relative"}}})}};
  std::ofstream(dir / "reference.json") << reference.dump(2) << "\n";
  std::cout << fmt::format("{}: tokens {}, logits {}\n", dir.string(),
                           lathe::shape_str(tokens.shape()), lathe::shape_str(logits.shape()));
  return 0;
}

int run(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "";
  if ((mode == "tiny-gpt" || mode == "tiny-gpt-nobias") && argc == 3)
    return run_gpt(mode == "tiny-gpt", argv[2]);
  std::filesystem::path bundle_path, dir;
  Tensor inputs;
  if ((mode == "tiny-classifier" || mode == "tiny-regression" || mode == "tiny-cnn") && argc == 3) {
    dir = argv[2];
    std::filesystem::create_directories(dir);
    bundle_path = make_tiny_bundle(mode.substr(5), dir, inputs);
  } else if (mode == "bundle" && argc == 5) {
    bundle_path = argv[2];
    inputs = lathe::read_idx(argv[3]);
    dir = argv[4];
    std::filesystem::create_directories(dir);
  } else {
    std::cerr << "usage: onnx_reference tiny-classifier|tiny-regression|tiny-cnn DIR\n"
                 "       onnx_reference tiny-gpt|tiny-gpt-nobias DIR\n"
                 "       onnx_reference bundle BUNDLE IDX_IMAGES DIR\n";
    return 2;
  }

  // Everything from the bundle as saved, the way `lathe export` reads it.
  const lathe::LoadedBundle bundle = lathe::load_bundle(bundle_path);
  const lathe::Predictor predictor(bundle);
  const Tensor predicted = predictor.predict(inputs);
  Shape input_shape{inputs.size(0)};
  input_shape.insert(input_shape.end(), predictor.input_shape().begin(),
                     predictor.input_shape().end());
  write_floats(dir / "input.bin", inputs);

  json reference = {
      {"bundle", std::filesystem::absolute(bundle_path).string()},
      {"input",
       {{"name", "input"}, {"shape", input_shape}, {"file", "input.bin"}, {"dtype", "float32"}}},
      {"outputs", json::array()}};
  // check: "absolute" (|onnx - lathe| <= tolerance) or "relative" (<= tolerance times 1 + the
  // row's largest |lathe|); see onnx_runtime_compare.js.
  const auto add_output = [&](const std::string& name, const Tensor& values, bool argmax,
                              const std::string& check) {
    write_floats(dir / (name + ".bin"), values);
    reference["outputs"].push_back({{"name", name},
                                    {"shape", values.shape()},
                                    {"file", name + ".bin"},
                                    {"argmax", argmax},
                                    {"check", check}});
  };
  if (predictor.kind() == lathe::PredictionKind::Classification) {
    add_output("probabilities", predicted, true, "absolute");
    lathe::NoGradGuard no_grad;
    add_output(
        "logits",
        bundle.model->forward(bundle.info.preprocessing.apply(lathe::reshape(inputs, input_shape))),
        true, "relative");
  } else {
    add_output("output", predicted, false, "absolute");
  }
  std::ofstream(dir / "reference.json") << reference.dump(2) << "\n";
  std::cout << fmt::format("{}: {} examples of shape {}, outputs {}\n", dir.string(),
                           inputs.size(0), lathe::shape_str(predictor.input_shape()),
                           reference["outputs"].size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_reference: error: %s\n", e.what());
    return 1;
  }
}
