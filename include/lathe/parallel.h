#pragma once
// A small thread pool for element-wise and reduction kernels. Idle workers sleep on a condition
// variable (no spinning: on 2 vCPUs a spinning pool steals the core the caller needs). Calls from
// inside a worker run inline, so parallel regions never nest.
#include <cstdint>
#include <functional>

namespace lathe {

// Runs body(begin, end) over [0, n) in chunks of at least `grain` items. Small ranges run on the
// calling thread. Exceptions from the body are rethrown on the caller.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

// Number of threads kernels use (the caller counts as one). Default: LATHE_NUM_THREADS or the
// number of hardware threads.
int num_threads();
void set_num_threads(int threads);

}  // namespace lathe
