// Which of OpenBLAS's kernels lathe runs. A DYNAMIC_ARCH OpenBLAS picks its kernels from the
// CPU's model number, and one that predates the CPU falls back to its SSE3 "Prescott" kernels:
// Debian 12's OpenBLAS 0.3.21 does so on an Intel Xeon of family 6 model 207, where sgemm then
// runs at 19 GFLOP/s per core against 71 with its AVX2 "Haswell" kernels (docs/PERFORMANCE.md).
// Where OpenBLAS has settled for kernels older than AVX2 on a CPU that has AVX2 and FMA, lathe
// switches it to Haswell's, once, before main. Not to the AVX-512 kernels: builds of this age
// are reported to compute wrong results with them on some processors. OPENBLAS_CORETYPE, when
// set, is the user's choice and is left alone.
#include <cblas.h>
#include <dlfcn.h>
#include <fmt/format.h>

#include <array>
#include <cstdlib>
#include <string_view>

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

bool cpu_has_avx2_and_fma() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();  // this runs among the static constructors, maybe before libgcc's
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

std::string core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

// OpenBLAS's own entry points for choosing a DYNAMIC_ARCH build's kernels; a build without them
// (one fixed target, or another BLAS behind the same name) is left as it is.
BlasKernels choose() {
  BlasKernels kernels{core_name(), ""};
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr || !before_avx2(kernels.core) ||
      !cpu_has_avx2_and_fma())
    return kernels;
  using Hook = void (*)();
  const auto quit = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_quit"));
  const auto init = reinterpret_cast<Hook>(dlsym(RTLD_DEFAULT, "gotoblas_dynamic_init"));
  if (quit == nullptr || init == nullptr) return kernels;
  // gotoblas_dynamic_init reads the choice from the environment; the variable is removed again
  // so that child processes make their own.
  setenv("OPENBLAS_CORETYPE", "Haswell", 1);
  quit();
  init();
  unsetenv("OPENBLAS_CORETYPE");
  const std::string found = kernels.core;
  kernels.core = core_name();
  kernels.chosen_by_lathe =
      fmt::format("OpenBLAS took this CPU, which has AVX2 and FMA, for {}", found);
  return kernels;
}

}  // namespace

const BlasKernels& blas_kernels() {
  static const BlasKernels kernels = choose();
  return kernels;
}

}  // namespace lathe::detail
