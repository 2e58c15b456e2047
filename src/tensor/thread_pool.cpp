// The kernel thread pool behind parallel_for. One job runs at a time; the caller works on it too.
// Workers block on a condition variable between jobs, so an idle pool costs no CPU, after
// watching for the next job for up to 200 microseconds: a training step hands the pool
// hundreds of jobs back to back, and waking a sleeping thread (or the caller waiting for one)
// costs tens of microseconds on these VMs. Between jobs, a worker may run the one IdleTask on
// offer.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/parallel.h"

namespace lathe {

namespace detail {

struct IdleTaskState {
  enum Stage : int { kPosted, kRunning, kDone };

  explicit IdleTaskState(std::function<void()> task) : body(std::move(task)) {}

  bool claim() {
    int expected = kPosted;
    return stage.compare_exchange_strong(expected, kRunning, std::memory_order_acq_rel);
  }

  void run() {
    try {
      body();
    } catch (...) {
      error = std::current_exception();
    }
    stage.store(kDone, std::memory_order_release);
    stage.notify_all();
  }

  void wait_done() const {
    for (int i = 0; i < 4096; ++i)
      if (stage.load(std::memory_order_acquire) == kDone) return;
    for (int s = stage.load(std::memory_order_acquire); s != kDone;
         s = stage.load(std::memory_order_acquire))
      stage.wait(s, std::memory_order_acquire);
  }

  std::function<void()> body;
  std::atomic<int> stage{kPosted};
  std::exception_ptr error;
};

}  // namespace detail

namespace {

using detail::IdleTaskState;

thread_local bool t_inside_parallel_region = false;

// How long a thread watches for a change before it blocks. Measured: the GPT step 33.8-34.7 ms
// without watching, 31.5-32.3 ms with 50 us, 30.9-31.6 ms with 200 us; but at 200 us the seed
// MLP epoch went from 0.38-0.43 to 0.52-0.72 s (the watching worker takes the core its data
// loader's prefetch thread needs). With the loader inline, as it now is where the pool fills
// every core, 200 us and 1 ms measured the same as 50 us on an AMD EPYC. On an Intel Xeon,
// where waking a blocked thread costs more (tens of microseconds), 200 us against 50 us: seed
// epoch medians 0.345 against 0.370 s and 0.357 against 0.387 s (16 and 6 alternating pairs,
// --epochs 3), wide MLP 1.25 against 1.37 s (4 pairs), GPT within the noise.
constexpr std::chrono::microseconds kWatch{200};

// Calls `done()` until it is true or kWatch has passed; returns its last answer.
template <class Done>
bool watch_briefly(Done done) {
  const auto until = std::chrono::steady_clock::now() + kWatch;
  for (int i = 0;; ++i) {
    if (done()) return true;
    if ((i & 63) == 63 && std::chrono::steady_clock::now() >= until) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

int default_thread_count() {
  if (const char* env = std::getenv("LATHE_NUM_THREADS")) {
    const int n = std::atoi(env);
    if (n >= 1) return n;
  }
  return hardware_threads();
}

class ThreadPool {
 public:
  explicit ThreadPool(int threads) {
    for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { work_loop(); });
  }

  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& worker : workers_) worker.join();
  }

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  void run(std::int64_t chunks, const std::function<void(std::int64_t)>& chunk_body) {
    std::lock_guard job_lock(job_mutex_);
    {
      std::lock_guard lock(mutex_);
      body_ = &chunk_body;
      chunk_count_ = chunks;
      next_chunk_.store(1);  // chunk 0 is the caller's
      busy_workers_ = static_cast<int>(workers_.size());
      running_workers_.store(busy_workers_, std::memory_order_relaxed);
      error_ = nullptr;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    run_chunks(0);
    watch_briefly([this] { return running_workers_.load(std::memory_order_acquire) == 0; });
    std::unique_lock lock(mutex_);
    done_.wait(lock, [this] { return busy_workers_ == 0; });
    body_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

  // Offers `task` to the workers once a job that starts after now is over; replaces a task
  // offered before (whose owner's finish() then runs it).
  void post(std::shared_ptr<IdleTaskState> task) {
    if (workers_.empty()) return;
    std::lock_guard lock(mutex_);
    idle_available_from_.store(generation_.load(std::memory_order_relaxed) + 1,
                               std::memory_order_release);
    idle_task_ = std::move(task);
  }

 private:
  // The caller always runs chunk 0 (`own`), the workers take the rest in turn, and whoever is
  // free takes a chunk a late worker has not. So in the usual case the same part of every
  // split (the first rows of a product, the first half of a parameter in Adam) runs on the same
  // core step after step, and its data stays in that core's cache: seed MLP epoch 0.282-0.360 s
  // against 0.292-0.365 s with chunks taken first come, first served (5 alternating pairs).
  void run_chunks(std::int64_t own = -1) {
    t_inside_parallel_region = true;
    for (std::int64_t chunk = own >= 0 ? own : next_chunk_.fetch_add(1); chunk < chunk_count_;
         chunk = next_chunk_.fetch_add(1)) {
      try {
        (*body_)(chunk);
      } catch (...) {
        std::lock_guard lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
    t_inside_parallel_region = false;
  }

  // Whether a worker that has finished job `seen` may start the offered idle task.
  bool idle_task_startable(std::uint64_t seen) const {
    const std::uint64_t from = idle_available_from_.load(std::memory_order_acquire);
    return from != 0 && seen >= from;
  }

  void work_loop() {
    std::uint64_t seen = 0;
    for (;;) {
      watch_briefly([&] {
        return generation_.load(std::memory_order_acquire) != seen || idle_task_startable(seen);
      });
      std::shared_ptr<IdleTaskState> idle;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock,
                   [&] { return stopping_ || generation_ != seen || idle_task_startable(seen); });
        if (stopping_) return;
        if (generation_ == seen) {  // a job comes before an idle task
          idle = std::exchange(idle_task_, nullptr);
          idle_available_from_.store(0, std::memory_order_relaxed);
        } else {
          seen = generation_;
        }
      }
      if (idle) {
        if (idle->claim()) {
          t_inside_parallel_region = true;
          idle->run();
          t_inside_parallel_region = false;
        }
        continue;
      }
      run_chunks();
      {
        std::lock_guard lock(mutex_);
        --busy_workers_;
        running_workers_.fetch_sub(1, std::memory_order_release);
      }
      done_.notify_one();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex job_mutex_;  // one job at a time
  std::mutex mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(std::int64_t)>* body_ = nullptr;
  std::int64_t chunk_count_ = 0;
  std::atomic<std::int64_t> next_chunk_{0};
  int busy_workers_ = 0;
  std::atomic<int> running_workers_{0};  // busy_workers_, readable without the mutex
  std::atomic<std::uint64_t> generation_{0};
  std::shared_ptr<IdleTaskState> idle_task_;  // guarded by mutex_
  // The first job generation whose end makes idle_task_ startable (the one after its post); 0: none
  std::atomic<std::uint64_t> idle_available_from_{0};
  bool stopping_ = false;
  std::exception_ptr error_;
};

std::mutex g_pool_mutex;
std::unique_ptr<ThreadPool> g_pool;
int g_requested_threads = 0;

ThreadPool& pool() {
  std::lock_guard lock(g_pool_mutex);
  if (!g_pool) {
    if (g_requested_threads == 0) g_requested_threads = default_thread_count();
    g_pool = std::make_unique<ThreadPool>(g_requested_threads);
  }
  return *g_pool;
}

}  // namespace

bool in_parallel_region() {
  return t_inside_parallel_region;
}

SerialRegion::SerialRegion() : outer_(std::exchange(t_inside_parallel_region, true)) {}

SerialRegion::~SerialRegion() {
  t_inside_parallel_region = outer_;
}

int hardware_threads() {
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int num_threads() {
  return pool().size();
}

void set_num_threads(int threads) {
  if (threads < 1)
    throw Error(fmt::format("set_num_threads: {} threads requested, need at least 1", threads));
  std::lock_guard lock(g_pool_mutex);
  g_requested_threads = threads;
  g_pool.reset();
}

IdleTask::IdleTask(std::function<void()> body)
    : state_(std::make_shared<IdleTaskState>(std::move(body))) {
  if (!t_inside_parallel_region) pool().post(state_);
}

IdleTask::~IdleTask() {
  int expected = IdleTaskState::kPosted;
  if (!state_->stage.compare_exchange_strong(expected, IdleTaskState::kDone)) state_->wait_done();
}

void IdleTask::finish() {
  if (state_->claim())
    state_->run();
  else
    state_->wait_done();
  if (state_->error) std::rethrow_exception(std::exchange(state_->error, nullptr));
}

bool IdleTask::done() const {
  return state_->stage.load(std::memory_order_acquire) == IdleTaskState::kDone;
}

void parallel_for(std::int64_t n, std::int64_t grain,
                  const std::function<void(std::int64_t, std::int64_t)>& body) {
  if (n <= 0) return;
  grain = std::max<std::int64_t>(grain, 1);
  if (n <= grain || t_inside_parallel_region) {
    body(0, n);
    return;
  }
  ThreadPool& threads = pool();
  const std::int64_t chunks = std::min<std::int64_t>(threads.size(), (n + grain - 1) / grain);
  if (chunks <= 1) {
    body(0, n);
    return;
  }
  const std::int64_t per_chunk = (n + chunks - 1) / chunks;
  threads.run(chunks, [&](std::int64_t chunk) {
    const std::int64_t begin = chunk * per_chunk;
    body(begin, std::min(n, begin + per_chunk));
  });
}

}  // namespace lathe
