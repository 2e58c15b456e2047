#pragma once
// Internal: unaligned loads and stores of GCC's generic vectors (`float
// __attribute__((vector_size(N)))`, which compile to whatever the target has: AVX-512, AVX2,
// SSE). memcpy states "any alignment" without undefined behaviour, and compiles to one vector move.
#include <cstring>

namespace lathe::detail {

template <class Vector>
Vector load_unaligned(const float* p) {
  Vector v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class Vector>
void store_unaligned(float* p, Vector v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace lathe::detail
