#pragma once
// Internal: unaligned loads and stores of GCC's generic vectors (`float
// __attribute__((vector_size(N)))`, which compile to whatever the target has: AVX-512, AVX2,
// SSE), and the maximum the convolutions' relu and pool share. memcpy states "any alignment"
// without undefined behaviour, and compiles to one vector move.
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

// max(v, so_far) lane by lane, where a NaN v compares false and loses. keep_larger(v, {}) is
// relu (NaN becomes 0), and a chain of them started from 0 is a relu and a max pool at once.
template <class Vector>
Vector keep_larger(Vector v, Vector so_far) {
  return v > so_far ? v : so_far;
}

}  // namespace lathe::detail
