// DataLoader: per-epoch seeded shuffling, batching, augmentation, and a one-batch-ahead
// background prefetch.
#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/parallel.h"

namespace lathe {

// One worker thread that assembles the batch after the one being trained on.
struct DataLoader::Prefetcher {
  explicit Prefetcher(const DataLoader& loader) : loader(loader), worker([this] { run(); }) {}

  ~Prefetcher() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    changed.notify_all();
    worker.join();
  }

  void request(std::int64_t batch_index) {
    {
      std::lock_guard lock(mutex);
      requested = batch_index;
      pending = true;
    }
    changed.notify_all();
  }

  // Waits for the requested batch; nothing when no request is outstanding.
  std::optional<Batch> take() {
    std::unique_lock lock(mutex);
    changed.wait(lock, [this] { return !pending || stopping; });
    if (error) std::rethrow_exception(std::exchange(error, nullptr));
    return std::exchange(result, std::nullopt);
  }

  void run() {
    std::unique_lock lock(mutex);
    for (;;) {
      changed.wait(lock, [this] { return pending || stopping; });
      if (stopping) return;
      const std::int64_t index = requested;
      lock.unlock();
      std::optional<Batch> batch;
      std::exception_ptr failure;
      try {
        batch = loader.assemble(index);
      } catch (...) {
        failure = std::current_exception();
      }
      lock.lock();
      result = std::move(batch);
      error = failure;
      pending = false;
      changed.notify_all();
    }
  }

  const DataLoader& loader;
  std::mutex mutex;
  std::condition_variable changed;
  std::int64_t requested = 0;
  bool pending = false;
  bool stopping = false;
  std::optional<Batch> result;
  std::exception_ptr error;
  std::thread worker;  // last: starts after the fields above exist
};

// The next batch, assembled by an idle kernel pool thread or else by the caller of next().
struct DataLoader::IdleAssembly {
  IdleAssembly(const DataLoader& loader, std::int64_t batch_index)
      : index(batch_index), task([this, &loader] { batch = loader.assemble(index); }) {}

  const std::int64_t index;
  std::optional<Batch> batch;
  IdleTask task;  // last: waits for (or drops) the assembly before the batch goes
};

bool background_prefetch_pays(int processes_on_host) {
  return std::int64_t{num_threads()} * std::max(1, processes_on_host) < hardware_threads();
}

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : dataset_(std::move(dataset)), options_(options) {
  if (!dataset_) throw Error("data loader: no dataset");
  if (options_.batch_size <= 0)
    throw Error(
        fmt::format("data loader: batch_size must be positive, got {}", options_.batch_size));
  if (options_.shard_count < 1 || options_.shard_index < 0 ||
      options_.shard_index >= options_.shard_count)
    throw Error(fmt::format("data loader: shard {} of {} does not exist", options_.shard_index,
                            options_.shard_count));
  options_.augmentation.validate();
  if (options_.prefetch) prefetcher_ = std::make_unique<Prefetcher>(*this);
  start_epoch(0);
}

DataLoader::~DataLoader() = default;

void BatchSource::load_state(const nlohmann::json& state) {
  if (!state.is_null())
    throw Error(fmt::format("this batch source keeps no state, but was given {}", state.dump()));
}

void BatchSource::skip(std::int64_t batches) {
  for (std::int64_t i = 0; i < batches && next(); ++i) {
  }
}

void DataLoader::skip(std::int64_t batches) {
  if (batches <= 0) return;
  if (prefetcher_) prefetcher_->take();
  idle_assembly_.reset();
  next_batch_ = std::min(next_batch_ + batches, batches_per_epoch());
  if (prefetcher_ && next_batch_ < batches_per_epoch()) prefetcher_->request(next_batch_);
}

std::int64_t DataLoader::batches_per_epoch() const {
  const std::int64_t n = dataset_->size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

void DataLoader::start_epoch(std::int64_t epoch) {
  // An outstanding batch (on the prefetch thread, or an idle task) finishes or is dropped
  // before the order changes.
  if (prefetcher_) prefetcher_->take();
  idle_assembly_.reset();
  order_.resize(static_cast<std::size_t>(dataset_->size()));
  std::iota(order_.begin(), order_.end(), 0);
  if (options_.shuffle) {
    // The order depends on (seed, epoch) only, so a resumed run replays it exactly.
    Generator generator(options_.seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(epoch));
    for (std::size_t i = order_.size(); i > 1; --i)
      std::swap(order_[i - 1], order_[generator.below(i)]);
  }
  epoch_ = epoch;
  next_batch_ = 0;
  if (prefetcher_ && batches_per_epoch() > 0) prefetcher_->request(0);
}

std::int64_t DataLoader::global_batch_rows(std::int64_t batch_index) const {
  const std::int64_t begin = batch_index * options_.batch_size;
  return std::clamp<std::int64_t>(dataset_->size() - begin, 0, options_.batch_size);
}

Batch DataLoader::assemble(std::int64_t batch_index) const {
  const std::int64_t rows = global_batch_rows(batch_index);
  const std::int64_t first = batch_index * options_.batch_size;
  const std::int64_t begin = first + rows * options_.shard_index / options_.shard_count;
  const std::int64_t end = first + rows * (options_.shard_index + 1) / options_.shard_count;
  Batch batch =
      dataset_->get_batch(std::vector<std::int64_t>(order_.begin() + begin, order_.begin() + end));
  // Seeded by the position in the epoch, not in the shard: any process count augments alike.
  if (options_.augmentation.enabled())
    batch.inputs =
        augment_images(batch.inputs, options_.augmentation, options_.seed, epoch_, begin);
  return batch;
}

std::optional<Batch> DataLoader::next() {
  if (next_batch_ >= batches_per_epoch()) return std::nullopt;
  const std::int64_t index = next_batch_++;
  if (!prefetcher_) {
    const std::unique_ptr<IdleAssembly> assembly = std::move(idle_assembly_);
    std::optional<Batch> batch;
    if (assembly && assembly->index == index) {
      assembly->task.finish();
      batch = std::move(assembly->batch);
    } else {
      batch = assemble(index);
    }
    if (options_.prefetch_on_idle_pool_thread && next_batch_ < batches_per_epoch())
      idle_assembly_ = std::make_unique<IdleAssembly>(*this, next_batch_);
    return batch;
  }
  std::optional<Batch> batch = prefetcher_->take();
  if (next_batch_ < batches_per_epoch()) prefetcher_->request(next_batch_);
  return batch;
}

}  // namespace lathe
