// Direct 3x3 convolutions of one input channel (see conv_one_channel.h).
#include "src/ops/conv_one_channel.h"

#include <algorithm>
#include <vector>

#include "lathe/parallel.h"
#include "src/tensor/generic_vectors.h"

namespace lathe::detail {
namespace {

// GCC's generic vectors compile to whatever the target has (one AVX-512 register, two AVX2 ones).
constexpr std::int64_t kWideLanes = 16;
using Wide = float __attribute__((vector_size(kWideLanes * sizeof(float))));

// An image with its zero padding, its rows wide enough that a vector of outputs at any column the
// loops start one at, shifted by a tap (up to 2 columns), reads inside the row.
struct PaddedImage {
  std::int64_t width;
  std::vector<float> data;
  explicit PaddedImage(const OneChannelShape& s)
      : width((s.ow() + 2 * kWideLanes - 1) / (2 * kWideLanes) * (2 * kWideLanes) + 2),
        data(static_cast<std::size_t>((s.oh() + 2) * width)) {}
  void fill(const OneChannelShape& s, const float* image) {
    std::fill(data.begin(), data.end(), 0.0f);
    for (std::int64_t y = 0; y < s.h; ++y)
      std::copy_n(image + y * s.w, s.w, data.data() + (y + s.pad_h) * width + s.pad_w);
  }
};

// The 9 shifted vectors of input an output vector at column x0 of output row y reads: at[3 ky +
// kx] starts at padded row y + ky, column x0 + kx. Loaded once, they serve every output channel:
// with the channels outermost, the loads (most of them split across two cache lines) bounded
// the kernel.
struct Taps {
  Wide at[9];
  Taps(const PaddedImage& image, std::int64_t y, std::int64_t x0) {
    for (std::int64_t ky = 0; ky < 3; ++ky)
      for (std::int64_t kx = 0; kx < 3; ++kx)
        at[3 * ky + kx] =
            load_unaligned<Wide>(image.data.data() + (y + ky) * image.width + x0 + kx);
  }
};

// One output vector of the channel whose 9 weights are w, before the epilogue. One sum per kernel
// row, added at the end: a single chain of 9 dependent multiply-adds leaves the core waiting.
[[gnu::always_inline]] inline Wide convolve(const Taps& in, const float* w, float bias) {
  Wide rows[3];
  for (std::int64_t ky = 0; ky < 3; ++ky)
    rows[ky] = in.at[3 * ky] * w[3 * ky] + in.at[3 * ky + 1] * w[3 * ky + 1] +
               in.at[3 * ky + 2] * w[3 * ky + 2];
  return bias + rows[0] + rows[1] + rows[2];
}

// Output planes written in row-major order. A row's last vector is stored whole where the plane
// has room: its lanes past the row land on positions that later stores write over. Only at the
// plane's end do they go lane by lane (a copy through a buffer took a third of the time).
struct Planes {
  float* first;
  std::int64_t size;  // of each plane
  void store(std::int64_t plane, std::int64_t at, Wide v, std::int64_t n) const {
    float* to = first + plane * size;
    if (at + kWideLanes <= size) return store_unaligned(to + at, v);
    for (std::int64_t i = 0; i < n; ++i) to[at + i] = v[i];
  }
};

// Each pooled row from two output rows, 2 kWideLanes columns at a time, whose pairs of columns
// are then split into even and odd ones.
void pooled_planes(const OneChannelShape& s, const PaddedImage& image, const float* w,
                   const float* bias, const Planes& out) {
  const std::int64_t ph = s.oh() / 2, pw = s.ow() / 2;
  for (std::int64_t row = 0; row < ph; ++row)
    for (std::int64_t p0 = 0; p0 < pw; p0 += kWideLanes) {
      const std::int64_t x0 = 2 * p0;
      const Taps top_left(image, 2 * row, x0), bottom_left(image, 2 * row + 1, x0);
      const Taps top_right(image, 2 * row, x0 + kWideLanes),
          bottom_right(image, 2 * row + 1, x0 + kWideLanes);
      for (std::int64_t o = 0; o < s.o; ++o) {
        const float* wo = w + 9 * o;
        const float b = bias ? bias[o] : 0.0f;
        const Wide left = keep_larger(convolve(bottom_left, wo, b),
                                      keep_larger(convolve(top_left, wo, b), Wide{}));
        const Wide right = keep_larger(convolve(bottom_right, wo, b),
                                       keep_larger(convolve(top_right, wo, b), Wide{}));
        const Wide even = __builtin_shufflevector(left, right, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18,
                                                  20, 22, 24, 26, 28, 30);
        const Wide odd = __builtin_shufflevector(left, right, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21,
                                                 23, 25, 27, 29, 31);
        out.store(o, row * pw + p0, keep_larger(even, odd), pw - p0);
      }
    }
}

// Images are shared out over the kernel thread pool once each thread gets this many outputs;
// one image of the exported CNN (32 pooled planes of 14x14) takes about 6 us and stays on the
// caller.
constexpr std::int64_t kOutputsPerThread = 32768;

}  // namespace

bool one_channel_applies(std::int64_t c, std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                         std::int64_t stride_w, std::int64_t dilation_h, std::int64_t dilation_w,
                         std::int64_t groups) {
  return c == 1 && kh == 3 && kw == 3 && stride_h == 1 && stride_w == 1 && dilation_h == 1 &&
         dilation_w == 1 && groups == 1;
}

void one_channel_relu_pool(const OneChannelShape& s, const float* x, const float* w,
                           const float* bias, float* y) {
  const std::int64_t plane_out = (s.oh() / 2) * (s.ow() / 2);
  const std::int64_t grain =
      std::max<std::int64_t>(1, kOutputsPerThread / std::max<std::int64_t>(1, plane_out * s.o));
  parallel_for(s.n, grain, [&](std::int64_t begin, std::int64_t end) {
    PaddedImage image(s);
    for (std::int64_t n = begin; n < end; ++n) {
      image.fill(s, x + n * s.h * s.w);
      pooled_planes(s, image, w, bias, Planes{y + n * s.o * plane_out, plane_out});
    }
  });
}

}  // namespace lathe::detail
