// One thread per task, joined when the next task starts or at join().
#include "src/serve/workers.h"

namespace lathe::serve {

Workers::~Workers() {
  join();
}

void Workers::run(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  join_ended_locked();
  threads_.emplace_back();
  const Handle self = std::prev(threads_.end());
  try {
    *self = std::thread([this, self, task = std::move(task)] {
      task();
      std::lock_guard done(mutex_);
      ended_.push_back(self);
    });
  } catch (...) {
    threads_.erase(self);
    throw;
  }
}

void Workers::join() {
  std::list<std::thread> all;
  {
    std::lock_guard lock(mutex_);
    all.swap(threads_);
  }
  for (std::thread& thread : all)
    if (thread.joinable()) thread.join();
  std::lock_guard lock(mutex_);
  ended_.clear();
}

void Workers::join_ended_locked() {
  for (const Handle handle : ended_) {
    handle->join();
    threads_.erase(handle);
  }
  ended_.clear();
}

}  // namespace lathe::serve
