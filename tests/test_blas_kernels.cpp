// lathe runs OpenBLAS's AVX2 kernels, at least, on a CPU that has AVX2 and FMA (see
// src/tensor/blas_kernels.cpp): OpenBLAS builds older than the CPU fall back to SSE3 kernels.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "src/tensor/blas.h"

extern "C" char* openblas_get_corename(void);

namespace lathe::detail {
namespace {

TEST(BlasKernels, ReportTheKernelsOpenBlasRuns) {
  EXPECT_EQ(blas_kernels().core, std::string(openblas_get_corename()));
  if (!blas_kernels().chosen_by_lathe.empty()) {
    EXPECT_EQ(blas_kernels().core, "Haswell");
    EXPECT_NE(blas_description().find("lathe runs its Haswell kernels"), std::string::npos)
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
