#pragma once
// safetensors files (the weights format of the Hugging Face ecosystem) and atomic file
// replacement: what checkpoints and bundles are built on. Includes nothing of models or data.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

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

}  // namespace lathe
