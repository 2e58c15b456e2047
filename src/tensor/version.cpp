#include "lathe/version.h"

#include <fmt/format.h>

#include "lathe/parallel.h"
#include "src/tensor/blas.h"

#ifndef LATHE_VERSION
#define LATHE_VERSION "unknown"
#endif

namespace lathe {

const char* version() {
  return LATHE_VERSION;
}

std::string build_info() {
  return fmt::format("lathe {}\nBLAS: {}\nkernel threads: {}", version(),
                     detail::blas_description(), num_threads());
}

}  // namespace lathe
