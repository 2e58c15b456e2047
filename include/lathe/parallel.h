#pragma once
// A small thread pool for element-wise and reduction kernels. Idle workers watch for the next job
// for 50 us, then sleep on a condition variable (a longer watch steals the core the caller needs
// on 2 vCPUs). Calls from inside a worker run inline, so parallel regions never nest.
#include <cstdint>
#include <functional>

namespace lathe {

// Runs body(begin, end) over [0, n) in chunks of at least `grain` items. Small ranges run on the
// calling thread. Exceptions from the body are rethrown on the caller.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

// Whether the calling thread is running a parallel_for body (where nested calls run inline).
bool in_parallel_region();

// Hardware threads of this machine (at least 1).
int hardware_threads();

// Number of threads kernels use (the caller counts as one). Default: LATHE_NUM_THREADS or the
// number of hardware threads.
int num_threads();
void set_num_threads(int threads);

}  // namespace lathe
