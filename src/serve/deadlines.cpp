// The deadline thread: sleeps until the earliest pending timer and runs the expired ones.
#include "src/serve/deadlines.h"

#include <vector>

namespace lathe::serve {

Deadlines::Deadlines() : thread_([this] { run(); }) {}

Deadlines::~Deadlines() {
  stop();
}

void Deadlines::add(const std::shared_ptr<Timer>& timer, Clock::time_point due,
                    std::function<void()> expire) {
  bool earliest = false;
  {
    std::lock_guard lock(mutex_);
    timer->expire = std::move(expire);
    timer->pending = true;
    timer->position = pending_.emplace(due, timer);
    earliest = timer->position == pending_.begin();
  }
  if (earliest) changed_.notify_one();
}

void Deadlines::cancel(const std::shared_ptr<Timer>& timer) {
  std::lock_guard lock(mutex_);
  if (!timer->pending) return;
  timer->pending = false;
  pending_.erase(timer->position);
}

void Deadlines::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
  std::lock_guard lock(mutex_);
  pending_.clear();
}

void Deadlines::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (pending_.empty()) {
      changed_.wait(lock);
      continue;
    }
    const Clock::time_point due = pending_.begin()->first;
    if (Clock::now() < due) {
      changed_.wait_until(lock, due);
      continue;
    }
    std::vector<std::shared_ptr<Timer>> expired;
    const auto now = Clock::now();
    while (!pending_.empty() && pending_.begin()->first <= now) {
      expired.push_back(std::move(pending_.begin()->second));
      expired.back()->pending = false;
      pending_.erase(pending_.begin());
    }
    lock.unlock();
    for (const auto& timer : expired) timer->expire();
    lock.lock();
  }
}

}  // namespace lathe::serve
