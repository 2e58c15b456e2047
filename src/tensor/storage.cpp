// Storage memory comes from a small cache of freed blocks, keyed by size: a training step
// allocates the same shapes every iteration, so after the first step no tensor touches the
// system allocator (no malloc, no fresh pages to fault in).
#include <atomic>
#include <cstdlib>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/tensor.h"

namespace lathe {
namespace {

constexpr std::size_t kAlignment = 64;
// Freed blocks kept for reuse, in all; beyond this they go back to the system.
constexpr std::size_t kCacheLimitBytes = std::size_t{1} << 30;

std::atomic<std::uint64_t> g_allocations{0};

class BlockCache {
 public:
  void* take(std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      auto found = free_.find(bytes);
      if (found != free_.end() && !found->second.empty()) {
        void* block = found->second.back();
        found->second.pop_back();
        cached_bytes_ -= bytes;
        return block;
      }
    }
    void* block = std::aligned_alloc(kAlignment, bytes);
    if (block == nullptr) throw Error(fmt::format("storage: cannot allocate {} bytes", bytes));
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    return block;
  }

  void give_back(void* block, std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      if (cached_bytes_ + bytes <= kCacheLimitBytes) {
        free_[bytes].push_back(block);
        cached_bytes_ += bytes;
        return;
      }
    }
    std::free(block);
  }

  ~BlockCache() {
    for (auto& [bytes, blocks] : free_)
      for (void* block : blocks) std::free(block);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<std::size_t, std::vector<void*>> free_;
  std::size_t cached_bytes_ = 0;
};

BlockCache& cache() {
  static BlockCache* instance = new BlockCache();  // never destroyed: tensors may outlive main
  return *instance;
}

std::size_t rounded(std::size_t bytes) {
  return bytes == 0 ? kAlignment : (bytes + kAlignment - 1) / kAlignment * kAlignment;
}

}  // namespace

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device != Device::CPU)
    throw Error(fmt::format("storage: device {} is not available", device_name(device)));
  data_ = cache().take(rounded(bytes));
}

Storage::~Storage() {
  cache().give_back(data_, rounded(bytes_));
}

std::uint64_t Storage::allocation_count() {
  return g_allocations.load(std::memory_order_relaxed);
}

}  // namespace lathe
