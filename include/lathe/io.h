#pragma once
// Files lathe writes and reads: safetensors (the weights format of the Hugging Face ecosystem),
// model bundles built on it, and atomic file replacement.
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/nn.h"
#include "lathe/tensor.h"

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

// Reads any safetensors file with F32, F64 or I64 tensors (others are an error naming the
// tensor). The file is treated as hostile: header size, JSON, dtypes, shapes and offsets are
// validated (overflow-checked, contiguous, covering the data) before any tensor is allocated.
SafetensorsContents load_safetensors(const std::filesystem::path& path);

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
LoadedBundle load_bundle(const std::filesystem::path& path);

}  // namespace lathe
