// lathe::matmul against OpenBLAS's own cblas_sgemm on the same shapes, in the same run, and both
// as a fraction of the machine's FMA peak on every core (bench/fma_peak.h). The target is lathe
// >= 90% of sgemm's rate: matmul adds only shape checks and the output allocation to the GEMM
// call.
#include <cblas.h>
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "bench/bench_util.h"
#include "bench/fma_peak.h"
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
  fmt::print("{}\n", lathe::build_info());
  const lathe::bench::FmaPeak peak = lathe::bench::measure_fma_peak();
  fmt::print("machine peak ({} FMA loop): {:.1f} GFLOP/s on one core, {:.1f} on {} cores\n\n",
             peak.isa, peak.one_core_gflops, peak.all_cores_gflops, peak.cores);
  const auto of_peak = [&](double gflops) {
    return peak.all_cores_gflops > 0 ? fmt::format("{:.0f}%", 100 * gflops / peak.all_cores_gflops)
                                     : std::string("-");
  };
  fmt::print("{:>16} {:>14} {:>14} {:>8} {:>8} {:>13}\n", "M x K x N", "lathe GFLOP/s",
             "sgemm GFLOP/s", "ratio", "target", "% peak l/s");
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
    const double lathe_gflops = flops / result.candidate_seconds / 1e9;
    const double sgemm_gflops = flops / result.reference_seconds / 1e9;
    fmt::print("{:>16} {:>14.1f} {:>14.1f} {:>8.3f} {:>8} {:>13}\n",
               fmt::format("{}x{}x{}", c.m, c.k, c.n), lathe_gflops, sgemm_gflops, ratio,
               met ? ">=0.90" : "BELOW", of_peak(lathe_gflops) + "/" + of_peak(sgemm_gflops));
  }
  return check && !all_met ? 1 : 0;
}
