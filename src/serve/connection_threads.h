#pragma once
// Internal: cpp-httplib's task queue for lathe's servers. httplib runs each accepted connection as
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

#include <condition_variable>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace lathe::serve {

class ConnectionThreads : public httplib::TaskQueue {
 public:
  ConnectionThreads(int warm, int max_threads);
  ~ConnectionThreads() override;

  void enqueue(std::function<void()> task) override;
  // Waits for the running tasks (httplib has shut their sockets down) and joins every thread.
  void shutdown() override;

 private:
  using Handle = std::list<std::thread>::iterator;
  void work(Handle self, bool warm);
  void join_ended();  // with mutex_ held

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

}  // namespace lathe::serve
