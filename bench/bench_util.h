#pragma once
// Timing for benchmarks that compare lathe with a reference in the same run: the two sides run
// in alternating rounds so that machine noise hits both alike, and medians are reported.
#include <algorithm>
#include <chrono>
#include <functional>
#include <vector>

namespace lathe::bench {

inline double seconds_per_call(const std::function<void()>& call, int calls) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) call();
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
  return elapsed.count() / calls;
}

inline double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const auto mid = values.size() / 2;
  return values.size() % 2 ? values[mid] : 0.5 * (values[mid - 1] + values[mid]);
}

struct Comparison {
  double candidate_seconds;  // median seconds per call
  double reference_seconds;
};

// Calibrates a call count so one batch takes about `batch_seconds`, then alternates
// candidate/reference batches for `rounds` rounds.
inline Comparison compare(const std::function<void()>& candidate,
                          const std::function<void()>& reference, int rounds,
                          double batch_seconds) {
  candidate();  // warm up caches, thread pools and lazily created state
  reference();
  const double probe = std::max(seconds_per_call(reference, 3), 1e-7);
  const int calls = std::max(1, static_cast<int>(batch_seconds / probe));
  std::vector<double> candidate_times, reference_times;
  for (int r = 0; r < rounds; ++r) {
    candidate_times.push_back(seconds_per_call(candidate, calls));
    reference_times.push_back(seconds_per_call(reference, calls));
  }
  return {median(candidate_times), median(reference_times)};
}

}  // namespace lathe::bench
