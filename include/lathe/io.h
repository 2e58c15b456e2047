#pragma once
// Files lathe writes and reads: safetensors (the weights format of the Hugging Face ecosystem),
// model bundles built on it, and atomic file replacement.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/gpt.h"
#include "lathe/nn.h"
#include "lathe/tensor.h"
#include "lathe/text.h"

namespace lathe {

struct SafetensorsContents {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;  // the "__metadata__" strings
};

// Writes atomically: a temporary file beside `path`, fsync, rename, fsync of the directory.
// An existing file at `path` is replaced only once the new one is complete.
void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads any safetensors file, as written by lathe or by the Hugging Face library (header padded
// with spaces, any key order, __metadata__ optional). F32, F64 and I64 tensors load as they are;
// F16 and BF16 load as float32 (exactly), I32, I16, I8, U64, U32, U16, U8 and BOOL as int64
// (U64 above the int64 range and BOOL bytes other than 0/1 are errors); F8 and other dtypes are
// an error naming the tensor. The file is treated as hostile: header size (100 MB cap), UTF-8
// JSON without duplicate keys, dtypes, shapes and offsets are validated (overflow-checked,
// contiguous, covering the data exactly) before any tensor is allocated; errors name the file,
// the tensor and the field.
SafetensorsContents load_safetensors(const std::filesystem::path& path);
// The same on the bytes of a file already in memory; `where` names them in errors.
SafetensorsContents parse_safetensors(std::string_view bytes, const std::string& where);

// Writes `contents` to `path` atomically (temporary file, fsync, rename).
void write_file_atomically(const std::filesystem::path& path, const std::string& contents);

// A deployable model: weights plus everything needed to use them, in one safetensors file whose
// __metadata__ holds JSON strings under "lathe.architecture", "lathe.preprocessing",
// "lathe.task" and "lathe.metrics".
struct BundleInfo {
  nlohmann::json architecture;  // the model's spec(), rebuildable by make_layer
  Preprocessing preprocessing;
  nlohmann::json task;     // {"kind": "classification"|"regression", "classes": [...],
                           //  "input_shape": [...], "target": ..., "features": [...]}
  nlohmann::json metrics;  // final metrics of training
};

void save_bundle(const std::filesystem::path& path, const Module& model, const BundleInfo& info);

struct LoadedBundle {
  std::shared_ptr<Module> model;  // in eval mode
  BundleInfo info;
};
// Reads a bundle. The architecture is checked against the file's tensors (every tensor it needs
// present with its shape and float dtype, no others) before the model is built, so a hostile
// architecture cannot allocate more than the file holds.
LoadedBundle load_bundle(const std::filesystem::path& path);
// The same on the bytes of a bundle already in memory; `where` names them in errors.
LoadedBundle parse_bundle(std::string_view bytes, const std::string& where);

// A language-model bundle is a bundle too: the architecture is GPT::spec() ({"type": "gpt",
// ...}), the task {"task": "language_model", "tokenizer": Tokenizer::to_json()}; the tokenizer's
// vocabulary size must equal the model's. load_bundle reads them as well (model: a GPT).
void save_language_model(const std::filesystem::path& path, const GPT& model,
                         const Tokenizer& tokenizer, const nlohmann::json& metrics);

struct LanguageModel {
  std::shared_ptr<GPT> model;  // in eval mode
  std::shared_ptr<const Tokenizer> tokenizer;
  BundleInfo info;
};
// Errors when the bundle is not a language model (naming what it is instead).
LanguageModel load_language_model(const std::filesystem::path& path);
LanguageModel as_language_model(const LoadedBundle& bundle, const std::string& where);
bool is_language_model(const BundleInfo& info);

}  // namespace lathe
