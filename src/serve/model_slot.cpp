// Loading and swapping served models; the polling thread behind --watch.
#include "src/serve/model_slot.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "lathe/error.h"

namespace lathe::serve {

FileStamp stamp_of(const std::filesystem::path& path) {
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0) return {};
  return {true, static_cast<std::uintmax_t>(info.st_size),
          static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec,
          info.st_ino, info.st_dev};
}

ModelSlot::ModelSlot(std::string name, std::filesystem::path path, InferencePrecision precision,
                     bool allow_signature_change)
    : name_(std::move(name)),
      path_(std::move(path)),
      precision_(precision),
      allow_signature_change_(allow_signature_change) {}

std::shared_ptr<const ServedModel> ModelSlot::current() const {
  std::lock_guard lock(mutex_);
  return current_;
}

bool ModelSlot::changed_on_disk() const {
  const FileStamp now = stamp_of(path_);
  std::lock_guard lock(mutex_);
  return !(now == attempted_);
}

std::shared_ptr<const ServedModel> ModelSlot::load() {
  std::lock_guard one_at_a_time(load_mutex_);
  {
    // Stamped before reading: a write that lands during the load changes the stamp again, and
    // the next poll loads once more.
    const FileStamp stamp = stamp_of(path_);
    std::lock_guard lock(mutex_);
    attempted_ = stamp;
  }
  std::shared_ptr<ServedModel> model = load_served_model(path_, precision_);
  model->name = name_;
  const std::shared_ptr<const ServedModel> serving = current();
  if (serving && !allow_signature_change_ && model->signature() != serving->signature())
    throw Error(fmt::format(
        "{}: refused: its task, inputs or outputs differ from version {} being served (was {}, "
        "now {}); clients of '{}' would break. Serve it under another name, or restart with "
        "--allow-signature-change",
        path_.string(), serving->version, serving->signature().dump(), model->signature().dump(),
        name_));
  return publish(std::move(model));
}

std::shared_ptr<const ServedModel> ModelSlot::publish(std::shared_ptr<ServedModel> model) {
  std::lock_guard lock(mutex_);
  model->version = versions_ + 1;
  model->metadata_json = model->metadata();
  versions_ = model->version;
  current_ = model;
  return model;
}

PeriodicThread::PeriodicThread(std::chrono::milliseconds interval, std::function<void()> tick) {
  thread_ = std::thread([this, interval, tick = std::move(tick)] {
    std::unique_lock lock(mutex_);
    while (!wake_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      tick();
      lock.lock();
    }
  });
}

PeriodicThread::~PeriodicThread() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

}  // namespace lathe::serve
