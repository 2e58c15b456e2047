// lathe runs OpenBLAS's AVX2 kernels, at least, on a CPU that has AVX2 and FMA, and its AVX-512
// ones where it switched them on a CPU with AVX-512 (see src/tensor/blas_kernels.cpp): OpenBLAS
// builds older than the CPU fall back to SSE3 kernels.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "src/tensor/blas.h"

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);

namespace lathe::detail {
namespace {

bool cpu_has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}

TEST(BlasKernels, ReportTheKernelsOpenBlasRuns) {
  EXPECT_EQ(blas_kernels().core, std::string(openblas_get_corename()));
  if (!blas_kernels().chosen_by_lathe.empty()) {
    // The best the CPU supports, where the build has them (a NO_AVX512 build has no SkylakeX).
    const std::string best = cpu_has_avx512() ? "SkylakeX" : "Haswell";
    if (std::string(openblas_get_config()).find("NO_AVX512") == std::string::npos) {
      EXPECT_EQ(blas_kernels().core, best);
    }
    EXPECT_NE(blas_description().find("lathe runs its " + blas_kernels().core + " kernels"),
              std::string::npos)
        << blas_description();
  }
}

TEST(BlasKernels, AreNotTheSse3FallbackOnACpuWithAvx2AndFma) {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) GTEST_SKIP() << "OPENBLAS_CORETYPE is set";
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
    GTEST_SKIP() << "this CPU lacks AVX2 or FMA";
  for (const char* old : {"Prescott", "Core2", "Penryn", "Nehalem", "Sandybridge"})
    EXPECT_NE(blas_kernels().core, old);
}

}  // namespace
}  // namespace lathe::detail
