#pragma once
// Model bundles: a deployable model in one safetensors file whose __metadata__ holds JSON
// strings under "lathe.architecture" (the model's spec(), rebuilt through the layer registry),
// "lathe.preprocessing", "lathe.task" and "lathe.metrics". Any module whose type is registered
// (lathe's layers, the GPT, a program's own: lathe/nn.h) can be saved and loaded.
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/language_model.h"
#include "lathe/nn.h"
#include "lathe/safetensors.h"
#include "lathe/text.h"

namespace lathe {

struct BundleInfo {
  nlohmann::json architecture;  // the model's spec(), rebuildable by make_layer
  Preprocessing preprocessing;
  nlohmann::json task;     // {"task": "classification"|"regression"|"language_model",
                           //  "classes": [...], "input_shape": [...], "target": ...,
                           //  "features": [...], "tokenizer": {...}}
  nlohmann::json metrics;  // final metrics of training
};

// Refuses, before writing anything, a module that the registry cannot rebuild from its spec()
// (an unregistered type of a program's own, say), naming the type and the call that fixes it.
void save_bundle(const std::filesystem::path& path, const Module& model, const BundleInfo& info);

struct LoadedBundle {
  std::shared_ptr<Module> model;  // in eval mode
  BundleInfo info;
};
// Reads a bundle. The architecture is checked against the file's tensors (every tensor it needs
// present with its shape and float dtype, no others) before the model is built, so a hostile
// architecture cannot allocate more than the file holds; where the task gives an input shape,
// every layer's output for one example is bounded too (kMaxActivationValues), so convolution
// geometry cannot ask for gigabytes of activations either.
// A file whose extension has a registered reader (register_model_file_reader: ".onnx" once
// lathe::register_onnx_import has run) is read by that reader instead.
LoadedBundle load_bundle(const std::filesystem::path& path);

// Another model file format that load_bundle (and so predict, eval, serve, inspect) accepts,
// chosen by the file's extension, lower case with its dot (".onnx"). Registering an extension
// again replaces its reader. Thread-safe.
using ModelFileReader = std::function<LoadedBundle(const std::filesystem::path& path)>;
void register_model_file_reader(const std::string& extension, ModelFileReader reader);
// Whether load_bundle reads `path` through a registered reader rather than as a bundle.
bool has_model_file_reader(const std::filesystem::path& path);
// The same on the bytes of a bundle already in memory; `where` names them in errors.
LoadedBundle parse_bundle(std::string_view bytes, const std::string& where);

// The most values one example may take at any layer of a bundle's model (256 MiB of float32).
inline constexpr std::int64_t kMaxActivationValues = std::int64_t{1} << 26;

// A language-model bundle is a bundle too: the architecture is the model's spec(), the task
// {"task": "language_model", "tokenizer": Tokenizer::to_json()}; the tokenizer's vocabulary size
// must equal the model's.
void save_language_model(const std::filesystem::path& path, const CausalLanguageModel& model,
                         const Tokenizer& tokenizer, const nlohmann::json& metrics);

struct LanguageModel {
  std::shared_ptr<CausalLanguageModel> model;  // in eval mode
  std::shared_ptr<const Tokenizer> tokenizer;
  BundleInfo info;
};
// Errors when the bundle is not a language model (naming what it is instead).
LanguageModel load_language_model(const std::filesystem::path& path);
LanguageModel as_language_model(const LoadedBundle& bundle, const std::string& where);
bool is_language_model(const BundleInfo& info);

}  // namespace lathe
