#pragma once
// A served model and its reload: each name has a slot holding the current version as a
// shared_ptr to an immutable ServedModel. Reload builds the new version off to the side and swaps
// the pointer; requests already holding the old one finish with it. A bundle that fails to load,
// or whose inputs and outputs differ from the version being served (unless allowed), leaves the
// slot as it was.
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

#include "lathe/inference.h"
#include "src/serve/served_model.h"

namespace lathe::serve {

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
            InferencePrecision precision = InferencePrecision::Float32,
            bool allow_signature_change = false);

  const std::string& name() const { return name_; }
  const std::filesystem::path& path() const { return path_; }
  std::shared_ptr<const ServedModel> current() const;  // null until the first load

  // Reads the bundle, builds the next version and swaps it in. Throws lathe::Error (or another
  // std::exception) and keeps the current version when the bundle cannot be loaded, or when its
  // task, inputs or outputs differ from the current version's and changes are not allowed.
  std::shared_ptr<const ServedModel> load();
  // Whether the file differs from what the last load attempt saw.
  bool changed_on_disk() const;

 private:
  // Numbers a freshly built model as the next version and makes it current.
  std::shared_ptr<const ServedModel> publish(std::shared_ptr<ServedModel> model);

  const std::string name_;
  const std::filesystem::path path_;
  const InferencePrecision precision_;
  const bool allow_signature_change_;
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
