#include "src/serve/connection_threads.h"

#include <chrono>
#include <system_error>
#include <utility>

namespace lathe::serve {
namespace {

// How long a thread beyond the warm ones waits for another connection before it ends.
constexpr std::chrono::seconds kIdleLifetime{10};

}  // namespace

ConnectionThreads::ConnectionThreads(int warm, int max_threads)
    : max_threads_(max_threads < warm ? warm : max_threads) {
  std::lock_guard lock(mutex_);
  for (int i = 0; i < warm; ++i) {
    threads_.emplace_back();
    const Handle self = std::prev(threads_.end());
    *self = std::thread([this, self] { work(self, /*warm=*/true); });
  }
}

ConnectionThreads::~ConnectionThreads() {
  shutdown();
}

void ConnectionThreads::enqueue(std::function<void()> task) {
  std::lock_guard lock(mutex_);
  join_ended();
  tasks_.push_back(std::move(task));
  const auto waiting = static_cast<std::ptrdiff_t>(tasks_.size());
  if (waiting > idle_ && static_cast<int>(threads_.size()) < max_threads_) {
    threads_.emplace_back();
    const Handle self = std::prev(threads_.end());
    try {
      *self = std::thread([this, self] { work(self, /*warm=*/false); });
      return;
    } catch (const std::system_error&) {
      // Out of threads (a process or memory limit): the task waits for a running thread.
      threads_.erase(self);
    }
  }
  task_ready_.notify_one();
}

void ConnectionThreads::work(Handle self, bool warm) {
  std::unique_lock lock(mutex_);
  for (;;) {
    ++idle_;
    const auto has_work = [&] { return !tasks_.empty() || stopping_; };
    bool woken = true;
    if (warm)
      task_ready_.wait(lock, has_work);
    else
      woken = task_ready_.wait_for(lock, kIdleLifetime, has_work);
    --idle_;
    if (!woken || tasks_.empty()) break;  // idle too long, or stopping with nothing queued
    std::function<void()> task = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
  ended_.push_back(self);
}

void ConnectionThreads::join_ended() {
  for (const Handle handle : ended_) {
    handle->join();
    threads_.erase(handle);
  }
  ended_.clear();
}

void ConnectionThreads::shutdown() {
  std::list<std::thread> all;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    task_ready_.notify_all();
    all.splice(all.end(), threads_);
  }
  for (std::thread& thread : all)
    if (thread.joinable()) thread.join();
  // The joined threads listed themselves as ended, with handles into `all`, which goes now.
  std::lock_guard lock(mutex_);
  ended_.clear();
}

}  // namespace lathe::serve
