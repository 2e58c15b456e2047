#pragma once
// Timers for requests that wait off any thread (a queued inference): `expire` runs on this
// object's thread at the deadline unless the request was answered and cancelled its timer first.
// Cancelled timers go at once, so at thousands of requests a second only those waiting are held.
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

namespace lathe::serve {

class Deadlines {
 public:
  using Clock = std::chrono::steady_clock;
  Deadlines();
  ~Deadlines();  // stop()
  Deadlines(const Deadlines&) = delete;
  Deadlines& operator=(const Deadlines&) = delete;

  class Timer;
  // Schedules `timer`, made beforehand so that whoever may cancel it can hold it before it can
  // fire (a deadline already past fires at once).
  void add(const std::shared_ptr<Timer>& timer, Clock::time_point due,
           std::function<void()> expire);
  // Does nothing for a timer that is not scheduled, or has fired.
  void cancel(const std::shared_ptr<Timer>& timer);
  // Joins the thread; timers still pending never run.
  void stop();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable changed_;
  std::multimap<Clock::time_point, std::shared_ptr<Timer>> pending_;
  bool stopping_ = false;
  std::thread thread_;
};

class Deadlines::Timer {
  friend class Deadlines;
  std::function<void()> expire;
  std::multimap<Clock::time_point, std::shared_ptr<Timer>>::iterator position;
  bool pending = false;
};

}  // namespace lathe::serve
