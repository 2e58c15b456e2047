// Which of OpenBLAS's kernels lathe runs. A DYNAMIC_ARCH OpenBLAS picks its kernels from the
// CPU's model number, and one that predates the CPU falls back to its SSE3 "Prescott" kernels:
// Debian 12's OpenBLAS 0.3.21 does so on an Intel Xeon of family 6 model 207, where sgemm then
// runs at 19 GFLOP/s per core against 71 with its AVX2 "Haswell" kernels and 140-150 with its
// AVX-512 "SkylakeX" ones (docs/PERFORMANCE.md). Where OpenBLAS has settled for kernels older
// than AVX2, lathe switches it, once, before main, to the newest of those two the CPU (and its
// operating system) supports. The wrong results reported for OpenBLAS's AVX-512 code were in
// DGEMM and the sgemm_direct path, fixed before 0.3.21; tests/test_blas_products.cpp checks
// every kind of product lathe asks for against a reference on whatever kernels run.
// OPENBLAS_CORETYPE, when set, is the user's choice and is left alone.
#include <cblas.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "src/tensor/blas.h"

namespace lathe::detail {
namespace {

// OpenBLAS's x86 cores without AVX2 kernels, as openblas_get_corename() names them.
constexpr std::array<std::string_view, 20> kCoresBeforeAvx2 = {
    "Prescott",   "Core2",       "Penryn",    "Dunnington",   "Nehalem",
    "Atom",       "Nano",        "Banias",    "Northwood",    "Katmai",
    "Coppermine", "Athlon",      "Opteron",   "Opteron_SSE3", "Barcelona",
    "Bobcat",     "Sandybridge", "Bulldozer", "Piledriver",   "Steamroller"};

bool before_avx2(std::string_view core) {
  for (std::string_view old : kCoresBeforeAvx2)
    if (core == old) return true;
  return false;
}

// OpenBLAS cores lathe switches to, best first, with the CPU features their kernels need;
// libgcc counts a feature only where the operating system saves its registers.
struct Upgrade {
  const char *core, *features;
};
std::vector<Upgrade> upgrades_for_this_cpu() {
  std::vector<Upgrade> upgrades;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // this runs among the static constructors, maybe before libgcc's
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    upgrades.push_back({"SkylakeX", "AVX-512"});
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    upgrades.push_back({"Haswell", "AVX2 and FMA"});
#endif
  return upgrades;
}

std::string core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

// OpenBLAS's own entry points for choosing a DYNAMIC_ARCH build's kernels; a build without them
// (one fixed target, or another BLAS behind the same name) is left as it is. A build without a
// core's kernels (NO_AVX512) falls back to Prescott when asked for it, so the next is tried.
BlasKernels choose() {
  BlasKernels kernels{core_name(), ""};
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || !before_avx2(kernels.core)) return kernels;
  using Hook = void (*)();
  const auto quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  const auto init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (quit == nullptr || init == nullptr) return kernels;
  const auto switch_to = [&](const char* core) {
    // gotoblas_dynamic_init reads the choice from the environment; the variable is removed
    // again so that child processes make their own.
    if (core != nullptr) setenv("OPENBLAS_CORETYPE", core, 1);
    quit();
    init();
    unsetenv("OPENBLAS_CORETYPE");
  };
  for (const Upgrade& upgrade : upgrades_for_this_cpu()) {
    switch_to(upgrade.core);
    if (core_name() != upgrade.core) continue;
    kernels.chosen_by_lathe =
        fmt::format("OpenBLAS took this CPU, which has {}, for {}", upgrade.features, kernels.core);
    kernels.core = core_name();
    return kernels;
  }
  if (core_name() != kernels.core) switch_to(nullptr);  // none took: OpenBLAS's own choice again
  return kernels;
}

}  // namespace

const BlasKernels& blas_kernels() {
  static const BlasKernels kernels = choose();
  return kernels;
}

}  // namespace lathe::detail
