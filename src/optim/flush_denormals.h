#pragma once
// Internal: while alive, the calling thread's float arithmetic reads subnormal numbers as zero
// and writes zero in place of a subnormal result (x86's DAZ and FTZ modes; elsewhere nothing).
//
// Why the optimizers' loops run under it: the moment buffers of a weight whose gradient has
// stopped (an input unit of a ReLU that no longer fires) shrink by beta every step until they
// are subnormal, and an Intel core takes a microcode assist, on the order of a hundred cycles,
// for each vector operation that meets one. In the seed MLP 3% of the first layer's exp_avg
// and 9% of the second's are subnormal after one epoch, and Adam's update took 75-120 us a step
// there against 38-41 us flushed. Such a value moves its parameter by about 1e-37, far below
// the last bit of any parameter that is not itself that small, so flushing it changes no
// parameter in practice (examples/fashion_mlp ends with the same test loss to every printed
// digit); the buffer holds 0 where PyTorch's holds the subnormal.
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif

namespace lathe::detail {

class FlushDenormals {
 public:
#if defined(__SSE__) || defined(__x86_64__)
  FlushDenormals() : saved_(_mm_getcsr()) {
    _mm_setcsr(saved_ | kFlushToZero | kDenormalsAreZero);
  }
  ~FlushDenormals() {
    _mm_setcsr(saved_);
  }

 private:
  static constexpr unsigned kFlushToZero = 0x8000;
  static constexpr unsigned kDenormalsAreZero = 0x0040;
  unsigned saved_;
#else
  FlushDenormals() = default;
#endif

 public:
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
};

}  // namespace lathe::detail
