#include "src/train/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>

namespace lathe::detail {

bool stdout_is_terminal() {
  return ::isatty(::fileno(stdout)) == 1;
}

void ProgressBar::start(std::int64_t total) {
  total_ = total;
  started_ = std::chrono::steady_clock::now();
  last_drawn_ = started_ - std::chrono::seconds(1);
}

void ProgressBar::update(std::int64_t done, double loss) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done < total_ && now - last_drawn_ < std::chrono::milliseconds(100)) return;
  last_drawn_ = now;
  const double elapsed = std::chrono::duration<double>(now - started_).count();
  const double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  const double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
  constexpr int kWidth = 30;
  const int filled = total_ > 0 ? static_cast<int>(kWidth * done / total_) : kWidth;
  out_ << fmt::format("\r\033[K[{}{}] {}/{} {:.0f} batch/s ETA {}:{:02d} loss {:.4f}",
                      std::string(filled, '#'), std::string(kWidth - filled, '.'), done, total_,
                      rate, static_cast<int>(eta) / 60, static_cast<int>(eta) % 60, loss)
       << std::flush;
  drawn_ = true;
}

void ProgressBar::clear() {
  if (!drawn_) return;
  out_ << "\r\033[K" << std::flush;
  drawn_ = false;
}

}  // namespace lathe::detail
