#pragma once
// The machine's physical float32 limit, measured: a loop of independent fused multiply-adds at
// the widest vector width the CPU has (AVX-512 where present, else AVX2 + FMA), on one core and
// on every core at once. Twelve accumulators hide the FMA latency on the CPUs seen so far (4
// cycles, 2 ports). "% of peak" in the benchmarks is against this figure, beside OpenBLAS's own
// rate, which is a property of the kernels OpenBLAS happens to run (OPENBLAS_CORETYPE).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.h"

namespace lathe::bench {

struct FmaPeak {
  std::string isa;          // "avx512" or "avx2"
  double one_core_gflops;   // median of the repeats
  double all_cores_gflops;  // every hardware thread running the loop at once
  int cores;
};

namespace fma_detail {

constexpr long kIterations = 20'000'000;
constexpr int kChains = 12;

// Returns a value that depends on every accumulator, so the loop is not optimised away.
__attribute__((target("avx512f"))) inline float loop_avx512(long iterations) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.001f * static_cast<float>(j));
  const __m512 scale = _mm512_set1_ps(0.999999f), shift = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], scale, shift);
  for (int j = 1; j < kChains; ++j) acc[0] = _mm512_add_ps(acc[0], acc[j]);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

__attribute__((target("avx2,fma"))) inline float loop_avx2(long iterations) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(0.001f * static_cast<float>(j));
  const __m256 scale = _mm256_set1_ps(0.999999f), shift = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iterations; ++i)
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], scale, shift);
  for (int j = 1; j < kChains; ++j) acc[0] = _mm256_add_ps(acc[0], acc[j]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, acc[0]);
  float sum = 0;
  for (const float lane : lanes) sum += lane;
  return sum;
}

// Seconds for `threads` threads each running the loop once, started together.
inline double timed(bool avx512, int threads) {
  volatile float sink = 0;
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t)
    workers.emplace_back(
        [&] { sink = avx512 ? loop_avx512(kIterations) : loop_avx2(kIterations); });
  for (std::thread& worker : workers) worker.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace fma_detail

// About 0.1 s per repeat per measurement on the machines seen so far.
// A CPU without AVX2 and FMA gets isa "none" and zeros.
inline FmaPeak measure_fma_peak(int repeats = 5) {
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  if (!avx512 && !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
    return {"none", 0, 0, cores};
  const double lanes = avx512 ? 16 : 8;
  const double flops_per_thread = 2.0 * lanes * fma_detail::kChains * fma_detail::kIterations;
  std::vector<double> one, all;
  for (int r = 0; r < repeats; ++r) {
    one.push_back(flops_per_thread / fma_detail::timed(avx512, 1) / 1e9);
    all.push_back(cores * flops_per_thread / fma_detail::timed(avx512, cores) / 1e9);
  }
  return {avx512 ? "avx512" : "avx2", median(one), median(all), cores};
}

}  // namespace lathe::bench
