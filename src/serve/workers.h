#pragma once
// Threads for work that must not hold an HTTP event thread: generations, which take seconds, and
// requests with large bodies to parse. One thread per task; stop() joins them all.
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace lathe::serve {

class Workers {
 public:
  Workers() = default;
  ~Workers();  // join()
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;

  void run(std::function<void()> task);
  // Waits for every task started.
  void join();

 private:
  using Handle = std::list<std::thread>::iterator;
  void join_ended_locked();

  std::mutex mutex_;
  std::list<std::thread> threads_;
  std::list<Handle> ended_;  // threads whose task returned, to be joined
};

}  // namespace lathe::serve
