#pragma once
// Internal: cpp-httplib's task queue for `lathe board` (src/board); header-only, so that the
// board's library compiles it in without linking lathe_serve, whose transport is
// src/http/event_server.h. httplib runs each accepted connection as
// one task that reads its requests and answers them until the connection closes, so a fixed pool
// of N threads is held by any N clients that connect and then send nothing, or trickle a byte
// now and then (a "slowloris"): measured before this queue, 40 such clients kept a normal request
// waiting 20 s and more. Here every connection gets a thread of its own: `warm` threads wait from
// the start, and more are started while connections outnumber them, up to `max_threads`. A
// started thread that finds no connection for 10 s ends. Connections beyond `max_threads` wait
// for a thread as before. HttpServer, below, widens httplib's queue of connections not yet
// accepted.
#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

namespace lathe::http {

class ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(int warm, int max_threads)
      : max_threads_(max_threads < warm ? warm : max_threads) {
    std::lock_guard lock(mutex_);
    for (int i = 0; i < warm; ++i) {
      threads_.emplace_back();
      const Handle self = std::prev(threads_.end());
      *self = std::thread([this, self] { work(self, /*warm=*/true); });
    }
  }
  ~ConnectionThreads() override { shutdown(); }

  void enqueue(std::function<void()> task) override {
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

  // Waits for the running tasks (httplib has shut their sockets down) and joins every thread.
  void shutdown() override {
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

 private:
  using Handle = std::list<std::thread>::iterator;
  // How long a thread beyond the warm ones waits for another connection before it ends.
  static constexpr std::chrono::seconds kIdleLifetime{10};

  void work(Handle self, bool warm) {
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

  void join_ended() {  // with mutex_ held
    for (const Handle handle : ended_) {
      handle->join();
      threads_.erase(handle);
    }
    ended_.clear();
  }

  const int max_threads_;
  std::mutex mutex_;
  std::condition_variable task_ready_;
  std::deque<std::function<void()>> tasks_;
  std::list<std::thread> threads_;
  std::list<Handle> ended_;  // threads that returned, to be joined
  int idle_ = 0;
  bool stopping_ = false;
};

// httplib::Server, with the queue of connections the system has accepted and the server has not
// yet taken raised from httplib's 5 to the system's maximum: a burst of more than 5 connections
// (300 held ones, say) overflowed it, and each dropped connection was retried by the client 1 s
// later.
class HttpServer : public httplib::Server {
 public:
  // After bind_to_port/bind_to_any_port; listen() again on a listening socket sets its queue.
  void widen_accept_queue() { ::listen(svr_sock_, SOMAXCONN); }
};

}  // namespace lathe::http
