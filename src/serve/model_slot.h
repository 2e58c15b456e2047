#pragma once
// A served model and its reload: each name has a slot holding the current version as a
// shared_ptr to an immutable ServedModel. Reload builds the new version off to the side and swaps
// the pointer; requests already holding the old one finish with it. A bundle that fails to load
// leaves the slot as it was.
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "lathe/gpt.h"
#include "lathe/predict.h"
#include "lathe/text.h"
#include "src/serve/infer_request.h"

namespace lathe::serve {

// Output names, as documented in docs/deploy/serve.md.
inline constexpr const char* kProbabilitiesOutput = "probabilities";  // FP32 [N, classes]
inline constexpr const char* kClassIndexOutput = "class_index";       // INT64 [N]
inline constexpr const char* kValuesOutput = "values";                // FP32 [N, outputs...]

// One loaded version of a model; never changes once built. A classifier or regression model has
// a predictor (POST .../infer); a language model has gpt and tokenizer instead (POST
// .../generate). generate() only reads a GPT in eval mode, so requests share it.
struct ServedModel {
  std::string name;
  std::int64_t version = 0;
  std::shared_ptr<const Predictor> predictor;  // null for a language model
  std::shared_ptr<GPT> gpt;                    // language models only, in eval mode
  std::shared_ptr<const Tokenizer> tokenizer;  // language models only
  bool is_language_model() const { return gpt != nullptr; }
  ModelSignature signature;
  std::int64_t features = 0;     // inputs per example
  Shape output_shape;            // of one example: {classes} or the model's output
  std::int64_t output_size = 0;  // numel of output_shape
  std::string metadata_json;     // the body of GET /v2/models/{name}
};

// Identity of a file on disk: a change of any field means the file was rewritten or replaced.
struct FileStamp {
  bool exists = false;
  std::uintmax_t size = 0;
  std::int64_t mtime_ns = 0;
  ino_t inode = 0;
  dev_t device = 0;
  bool operator==(const FileStamp&) const = default;
};
FileStamp stamp_of(const std::filesystem::path& path);

class ModelSlot {
 public:
  ModelSlot(std::string name, std::filesystem::path path,
            InferencePrecision precision = InferencePrecision::Float32);

  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  std::shared_ptr<const ServedModel> current() const;  // null until the first load

  // Reads the bundle, builds the next version and swaps it in. Throws lathe::Error (or another
  // std::exception) and keeps the current version when the bundle cannot be loaded.
  std::shared_ptr<const ServedModel> load();
  // Whether the file differs from what the last load attempt saw.
  bool changed_on_disk() const;

 private:
  // Numbers a freshly built model as the next version and makes it current.
  std::shared_ptr<const ServedModel> publish(std::shared_ptr<ServedModel> model);

  const std::string name_;
  const std::filesystem::path path_;
  const InferencePrecision precision_;
  std::mutex load_mutex_;  // one load at a time
  mutable std::mutex mutex_;
  std::shared_ptr<const ServedModel> current_;
  FileStamp attempted_;  // stamp of the file at the last load attempt
  std::int64_t versions_ = 0;
};

// Calls `tick` every `interval` on its own thread until destroyed.
class PeriodicThread {
 public:
  PeriodicThread(std::chrono::milliseconds interval, std::function<void()> tick);
  ~PeriodicThread();
  PeriodicThread(const PeriodicThread&) = delete;
  PeriodicThread& operator=(const PeriodicThread&) = delete;

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace lathe::serve
