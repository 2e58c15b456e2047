#pragma once
// `lathe board`: a live training dashboard in the browser. A read-only HTTP server over a folder
// of runs (any folder below it, at any depth, that holds metrics.jsonl or status.json, as
// `lathe train` writes them) serving one page, embedded in the binary with the uPlot charting
// library: the curves of every run, updated while runs train, compared side by side, and a table
// of their status, differing config keys and results. docs/board.md describes the page.
#include <filesystem>
#include <memory>
#include <string>

namespace lathe {

struct BoardOptions {
  std::string host = "127.0.0.1";  // loopback: only this machine can see the runs
  int port = 6006;                 // 0: an ephemeral port, see BoardServer::port()
  int http_threads = 8;            // connection threads started up front
  int max_connections = 1024;      // answered at once, a thread each; more wait for one
};

class BoardServer {
 public:
  // Checks the folder and options and reads every run found, so the first page load is quick.
  BoardServer(const std::filesystem::path& runs_dir, BoardOptions options);
  ~BoardServer();  // stop()
  BoardServer(const BoardServer&) = delete;
  BoardServer& operator=(const BoardServer&) = delete;

  // Binds and answers on background threads; returns the port.
  int start();
  // Blocks until stop() (from another thread) or until the listening socket fails.
  void wait();
  void stop();  // idempotent
  int port() const;
  std::size_t runs_found() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lathe
