// lathe::matmul against OpenBLAS's own cblas_sgemm on the same shapes, in the same run.
// The target is lathe >= 90% of sgemm's rate: matmul adds only shape checks and the output
// allocation to the GEMM call.
#include <cblas.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "bench/bench_util.h"
#include "lathe/lathe.h"

int main(int argc, char** argv) {
  CLI::App app{"lathe matmul vs OpenBLAS sgemm (float32), ratio measured in one run"};
  int rounds = 9;
  double batch_seconds = 0.1;
  bool check = false;
  app.add_option("--rounds", rounds, "alternating measurement rounds (median taken)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_option("--batch-seconds", batch_seconds, "seconds per timed batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.add_flag("--check", check, "exit 1 when a ratio is below the 0.90 target");
  CLI11_PARSE(app, argc, argv);

  struct Case {
    std::int64_t m, k, n;
  };
  const Case cases[] = {{64, 784, 128}, {256, 1024, 1024}, {1024, 1024, 1024}};
  fmt::print("{}\n\n", lathe::build_info());
  fmt::print("{:>16} {:>14} {:>14} {:>8} {:>8}\n", "M x K x N", "lathe GFLOP/s", "sgemm GFLOP/s",
             "ratio", "target");
  bool all_met = true;
  lathe::Generator generator(1);
  for (const Case& c : cases) {
    const lathe::Tensor a = lathe::Tensor::randn({c.m, c.k}, generator);
    const lathe::Tensor b = lathe::Tensor::randn({c.k, c.n}, generator);
    lathe::Tensor out = lathe::Tensor::empty({c.m, c.n});
    const auto result = lathe::bench::compare(
        [&] { lathe::Tensor product = lathe::matmul(a, b); },
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(c.m),
                      static_cast<int>(c.n), static_cast<int>(c.k), 1.0f, a.data<float>(),
                      static_cast<int>(c.k), b.data<float>(), static_cast<int>(c.n), 0.0f,
                      out.data<float>(), static_cast<int>(c.n));
        },
        rounds, batch_seconds);
    const double flops = 2.0 * c.m * c.k * c.n;
    const double ratio = result.reference_seconds / result.candidate_seconds;
    const bool met = ratio >= 0.90;
    all_met = all_met && met;
    fmt::print("{:>16} {:>14.1f} {:>14.1f} {:>8.3f} {:>8}\n",
               fmt::format("{}x{}x{}", c.m, c.k, c.n), flops / result.candidate_seconds / 1e9,
               flops / result.reference_seconds / 1e9, ratio, met ? ">=0.90" : "BELOW");
  }
  return check && !all_met ? 1 : 0;
}
