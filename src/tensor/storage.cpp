#include <atomic>
#include <cstdlib>
#include <new>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/tensor.h"

namespace lathe {
namespace {
std::atomic<std::uint64_t> g_allocations{0};
constexpr std::size_t kAlignment = 64;
}  // namespace

Storage::Storage(std::size_t bytes, Device device) : bytes_(bytes), device_(device) {
  if (device != Device::CPU)
    throw Error(fmt::format("storage: device {} is not available", device_name(device)));
  const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  data_ = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
  if (data_ == nullptr) throw Error(fmt::format("storage: cannot allocate {} bytes", bytes));
  g_allocations.fetch_add(1, std::memory_order_relaxed);
}

Storage::~Storage() {
  std::free(data_);
}

std::uint64_t Storage::allocation_count() {
  return g_allocations.load(std::memory_order_relaxed);
}

}  // namespace lathe
