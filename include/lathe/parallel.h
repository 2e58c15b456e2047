#pragma once
// A small thread pool for element-wise and reduction kernels. Idle workers watch for the next job
// for 200 us, then sleep on a condition variable (a lasting spin would steal the core the caller
// needs on 2 vCPUs). Calls from inside a worker run inline, so parallel regions never nest.
#include <cstdint>
#include <functional>
#include <memory>

namespace lathe {

namespace detail {
// The grain element-wise kernels, reductions and optimizer updates pass to parallel_for: below
// this many elements a loop runs on the calling thread, where a hand-off to a worker would cost
// more than it saves.
constexpr std::int64_t kParallelGrain = 32768;
}  // namespace detail

// Runs body(begin, end) over [0, n) in chunks of at least `grain` items. Small ranges run on the
// calling thread. Exceptions from the body are rethrown on the caller.
void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body);

// A task for a pool thread with nothing else to do, such as assembling the next batch while the
// caller runs kernels too small to split. Workers may start it once a parallel_for that begins
// after it was posted is over: posted just before a split kernel, it would otherwise take that
// kernel's worker. finish() runs it on the caller if no worker has started it, else waits for it;
// with one thread it always runs there.
namespace detail {
struct IdleTaskState;
}
class IdleTask {
 public:
  explicit IdleTask(std::function<void()> body);
  ~IdleTask();  // drops the task if it has not started, else waits for it
  IdleTask(const IdleTask&) = delete;
  IdleTask& operator=(const IdleTask&) = delete;

  void finish();  // rethrows the task's exception
  bool done() const;

 private:
  std::shared_ptr<detail::IdleTaskState> state_;
};

// Whether the calling thread is running a parallel_for body (where nested calls run inline), or
// is inside a SerialRegion.
bool in_parallel_region();

// While one lives, the calling thread's parallel_for calls and matrix products run on it alone,
// as inside a parallel region. For a thread that works beside others busy with work of their own
// (lathe serve's model workers beside the HTTP threads), where handing half of a small kernel to
// a pool thread costs more than it saves. Other threads are not affected.
class SerialRegion {
 public:
  SerialRegion();
  ~SerialRegion();
  SerialRegion(const SerialRegion&) = delete;
  SerialRegion& operator=(const SerialRegion&) = delete;

 private:
  bool outer_;  // the thread's state before
};

// Hardware threads of this machine (at least 1).
int hardware_threads();

// Number of threads kernels use (the caller counts as one). Default: LATHE_NUM_THREADS or the
// number of hardware threads.
int num_threads();
void set_num_threads(int threads);

}  // namespace lathe
