#pragma once
// Internal: a one-line progress bar with rate and ETA, redrawn in place on a terminal.
#include <chrono>
#include <cstdint>
#include <ostream>
#include <string>

namespace lathe::detail {

class ProgressBar {
 public:
  ProgressBar(std::ostream& out, bool enabled) : out_(out), enabled_(enabled) {}
  void start(std::int64_t total);
  void update(std::int64_t done, double loss);  // redraws at most every 100 ms
  void clear();                                 // erases the bar before a normal line
  bool enabled() const { return enabled_; }

 private:
  std::ostream& out_;
  bool enabled_;
  std::int64_t total_ = 0;
  std::chrono::steady_clock::time_point started_, last_drawn_;
  bool drawn_ = false;
};

bool stdout_is_terminal();

}  // namespace lathe::detail
