#pragma once
// Internal: wall-clock time as seconds since 1970, the unit of metrics.jsonl's and status.json's
// timestamps.
#include <chrono>

namespace lathe::detail {

inline double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace lathe::detail
