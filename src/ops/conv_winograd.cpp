// Winograd F(2x2, 3x3) convolutions (see conv_winograd.h).
//
// With d a 4x4 input tile, g a 3x3 filter and m their product in the transform domain,
//   U = G g G^T,  V = B^T d B,  M = sum over channels of U (.) V,  y = A^T M A   (2x2 outputs),
// and the backward pass runs the adjoints: dM = A dy A^T, dV = sum over output channels of
// U (.) dM (into dx by B dV B^T, overlapping tiles adding up), dU = sum over tiles of dM (.) V
// (into dw by G^T dU G). Each transform is P X P^T for a small matrix P: P down the columns,
// then along the rows.
//
// Layout: a block of whole images at a time, its tiles numbered t = (image, tile row, tile
// column); V is [16][C][tiles], M and dM [16][O][tiles], U and dU [16][O][C], so each of the 16
// transform points is one row-major GEMM. A block is a few images (kTilesPerBlock tiles), so V and
// M stay near the core's cache while the 16 products read them. Images are shared out over the
// kernel thread pool, as in im2col's path.
#include "src/ops/conv_winograd.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <mutex>

#include "lathe/parallel.h"
#include "lathe/tensor.h"
#include "src/tensor/blas.h"
#include "src/tensor/generic_vectors.h"

namespace lathe::detail {
namespace {

constexpr int kPoints = 16;  // the 4x4 transform domain
// Tiles per block: on the CNN's training step (second convolution 32 -> 64 channels, 14x14, so
// 49 tiles an image), blocks of 50 to 256 tiles ran within the noise of one another and blocks
// of 512 to 4096 10-30% slower, as V and M outgrow the core's L2.
constexpr std::int64_t kTilesPerBlock = 128;

struct Tiling {
  WinogradShape s;
  std::int64_t tiles_y, tiles_x;
  std::int64_t per_image() const { return tiles_y * tiles_x; }
  std::int64_t images_per_block() const {
    return std::max<std::int64_t>(1, kTilesPerBlock / per_image());
  }
};

Tiling tiling(const WinogradShape& s) {
  return {s, (s.oh() + 1) / 2, (s.ow() + 1) / 2};
}

// The transforms run a tile row at a time, kLanes tiles per vector: tile tx starts at column
// 2 tx, so once a row's even and odd columns are split into two arrays, a tile's column j is
// element tx of one of them and column j + 2 element tx + 1. The vectors are GCC's generic ones,
// which compile to whatever the target has (AVX-512, AVX2, SSE); 8 lanes fit the 7 tiles of a
// 14x14 map. Each stream of V, M and dM ([point][channel][tiles]) is kLanes longer than its
// tiles (stream_stride), so a tile row's last vector may be loaded and stored whole.
constexpr int kLanes = 8;
using Lanes = float __attribute__((vector_size(kLanes * sizeof(float))));

Lanes load(const float* p) {
  return load_unaligned<Lanes>(p);
}
void add_to(float* p, Lanes v) {
  store_unaligned(p, load(p) + v);
}
// All bits set in the first n lanes, none in the rest: v & mask zeroes the rest, NaN included
// (multiplying by 0 would keep a NaN).
using LaneBits = std::int32_t __attribute__((vector_size(kLanes * sizeof(std::int32_t))));
LaneBits lanes_below(std::int64_t n) {
  LaneBits mask;
  for (int i = 0; i < kLanes; ++i) mask[i] = i < n ? -1 : 0;
  return mask;
}
Lanes masked(Lanes v, LaneBits mask) {
  return reinterpret_cast<Lanes>(reinterpret_cast<LaneBits>(v) & mask);
}

// A plane's rows split into even and odd columns, zero beyond the plane: row r, element j holds
// the plane's (r + row_offset, 2 j + column_offset) and (.., 2 j + 1 + column_offset).
struct SplitRows {
  std::int64_t rows, width;
  std::vector<float> data;
  SplitRows(std::int64_t rows_, std::int64_t tiles_x)
      : rows(rows_),
        width((tiles_x + 1 + 2 * kLanes - 1) / kLanes * kLanes),
        data(static_cast<std::size_t>(rows * 2 * width)) {}
  float* even(std::int64_t r) { return data.data() + 2 * r * width; }
  float* odd(std::int64_t r) { return even(r) + width; }
};

// The pairs j in [lo, hi) whose columns 2 j + offset and 2 j + 1 + offset both lie in [0, w),
// within [0, width): the part of a row that needs no bounds checks.
std::pair<std::int64_t, std::int64_t> inner_pairs(std::int64_t w, std::int64_t offset,
                                                  std::int64_t width) {
  const std::int64_t lo = std::min(width, std::max<std::int64_t>(0, (1 - offset) / 2));
  const std::int64_t hi = w - offset < 2 ? lo : std::clamp((w - offset) / 2, lo, width);
  return {lo, hi};
}

void split_plane(const float* plane, std::int64_t h, std::int64_t w, std::int64_t row_offset,
                 std::int64_t column_offset, SplitRows& out) {
  const auto [lo, hi] = inner_pairs(w, column_offset, out.width);
  for (std::int64_t r = 0; r < out.rows; ++r) {
    const std::int64_t y = r + row_offset;
    float* __restrict even = out.even(r);
    float* __restrict odd = out.odd(r);
    if (y < 0 || y >= h) {
      std::fill_n(even, 2 * out.width, 0.0f);  // even and odd are adjacent
      continue;
    }
    const float* __restrict row = plane + y * w;
    const auto edge = [&](std::int64_t j) {
      const std::int64_t xe = 2 * j + column_offset, xo = xe + 1;
      even[j] = xe >= 0 && xe < w ? row[xe] : 0.0f;
      odd[j] = xo >= 0 && xo < w ? row[xo] : 0.0f;
    };
    for (std::int64_t j = 0; j < lo; ++j) edge(j);
    const float* __restrict from = row + column_offset;
    for (std::int64_t j = lo; j < hi; ++j) even[j] = from[2 * j], odd[j] = from[2 * j + 1];
    std::int64_t j = hi;
    for (; j < out.width && 2 * j + column_offset < w; ++j) edge(j);
    std::fill(even + j, even + out.width, 0.0f);
    std::fill(odd + j, odd + out.width, 0.0f);
  }
}

// Streams of `tiles` values and the slack after each.
std::int64_t stream_stride(std::int64_t tiles) {
  return tiles + kLanes;
}

// V [16][C][tiles] for images [first, first + count), input channels [c0, c1).
void transform_inputs(const Tiling& t, const float* x, std::int64_t first, std::int64_t count,
                      std::int64_t c0, std::int64_t c1, float* v) {
  const WinogradShape& s = t.s;
  const std::int64_t ld = stream_stride(count * t.per_image());
  SplitRows split(2 * t.tiles_y + 2, t.tiles_x);
  for (std::int64_t n = 0; n < count; ++n)
    for (std::int64_t ic = c0; ic < c1; ++ic) {
      split_plane(x + ((first + n) * s.c + ic) * s.h * s.w, s.h, s.w, -s.pad_h, -s.pad_w, split);
      for (std::int64_t ty = 0; ty < t.tiles_y; ++ty)
        for (std::int64_t j0 = 0; j0 < t.tiles_x; j0 += kLanes) {
          // B^T down the columns, z_k = (r0 - r2, r1 + r2, r2 - r1, r1 - r3), for the even and odd
          // columns at tile tx (e, o) and tx + 1 (e1, o1).
          Lanes e[4], e1[4], o[4], o1[4];
          for (int i = 0; i < 4; ++i) {
            const std::int64_t r = 2 * ty + i;
            e[i] = load(split.even(r) + j0), e1[i] = load(split.even(r) + j0 + 1);
            o[i] = load(split.odd(r) + j0), o1[i] = load(split.odd(r) + j0 + 1);
          }
          const auto column = [](const Lanes* r, Lanes* z) {
            z[0] = r[0] - r[2], z[1] = r[1] + r[2], z[2] = r[2] - r[1], z[3] = r[1] - r[3];
          };
          Lanes ze[4], ze1[4], zo[4], zo1[4];
          column(e, ze), column(e1, ze1), column(o, zo), column(o1, zo1);
          // and along each tile's row: (e0 - e1, o0 + e1, e1 - o0, o0 - o1).
          const std::int64_t at = n * t.per_image() + ty * t.tiles_x + j0;
          for (int k = 0; k < 4; ++k) {
            float* out = v + (4 * k * s.c + ic) * ld + at;
            store_unaligned(out, ze[k] - ze1[k]);
            store_unaligned(out + s.c * ld, zo[k] + ze1[k]);
            store_unaligned(out + 2 * s.c * ld, ze1[k] - zo[k]);
            store_unaligned(out + 3 * s.c * ld, zo[k] - zo1[k]);
          }
        }
    }
}

// y for images [first, first + count), output channels [o0, o1), from M [16][O][tiles], plus the
// bias, then the epilogue. A 2x2 max pool's windows are the tiles themselves (tile tx covers
// columns 2 tx and 2 tx + 1), so a pooled tile is the maximum of its four outputs.
void transform_outputs(const Tiling& t, const float* m, const float* bias, ConvEpilogue epilogue,
                       std::int64_t first, std::int64_t count, std::int64_t o0, std::int64_t o1,
                       float* y) {
  const WinogradShape& s = t.s;
  const std::int64_t ld = stream_stride(count * t.per_image()), oh = s.oh(), ow = s.ow();
  const bool pool = epilogue.max_pool;
  // Pooling drops an odd last row or column, so only whole tiles are pooled.
  const std::int64_t rows_out = pool ? oh / 2 : oh, columns_out = pool ? ow / 2 : ow;
  const std::int64_t tile_rows = pool ? oh / 2 : t.tiles_y;
  SplitRows rows(2, t.tiles_x);  // one tile row's two output rows, even and odd columns
  for (std::int64_t n = 0; n < count; ++n)
    for (std::int64_t oc = o0; oc < o1; ++oc) {
      float* plane = y + ((first + n) * s.o + oc) * rows_out * columns_out;
      const float b = bias ? bias[oc] : 0.0f;
      for (std::int64_t ty = 0; ty < tile_rows; ++ty) {
        for (std::int64_t j0 = 0; j0 < t.tiles_x; j0 += kLanes) {
          const float* points = m + oc * ld + n * t.per_image() + ty * t.tiles_x + j0;
          // A^T down each column l: (m0 + m1 + m2, m1 - m2 - m3).
          Lanes top[4], bottom[4];
          for (int l = 0; l < 4; ++l) {
            const Lanes m0 = load(points + l * s.o * ld), m1 = load(points + (4 + l) * s.o * ld),
                        m2 = load(points + (8 + l) * s.o * ld),
                        m3 = load(points + (12 + l) * s.o * ld);
            top[l] = m0 + m1 + m2, bottom[l] = m1 - m2 - m3;
          }
          // and along each row.
          const Lanes* both[2] = {top, bottom};
          Lanes even[2], odd[2];
          for (int r = 0; r < 2; ++r) {
            const Lanes* q = both[r];
            even[r] = q[0] + q[1] + q[2] + b, odd[r] = q[1] - q[2] - q[3] + b;
          }
          if (pool) {
            // Started from 0, the chain is the relu and the pool (NaN never wins).
            Lanes pooled{};
            for (int r = 0; r < 2; ++r) pooled = keep_larger(odd[r], keep_larger(even[r], pooled));
            store_unaligned(rows.even(0) + j0, pooled);
            continue;
          }
          for (int r = 0; r < 2; ++r) {
            store_unaligned(rows.even(r) + j0,
                            epilogue.relu ? keep_larger(even[r], Lanes{}) : even[r]);
            store_unaligned(rows.odd(r) + j0,
                            epilogue.relu ? keep_larger(odd[r], Lanes{}) : odd[r]);
          }
        }
        if (pool) {
          std::copy_n(rows.even(0), columns_out, plane + ty * columns_out);
          continue;
        }
        for (int r = 0; r < 2 && 2 * ty + r < oh; ++r) {
          float* row = plane + (2 * ty + r) * ow;
          const float *even = rows.even(r), *odd = rows.odd(r);
          for (std::int64_t j = 0; j < ow / 2; ++j) row[2 * j] = even[j], row[2 * j + 1] = odd[j];
          if (ow % 2) row[ow - 1] = even[ow / 2];
        }
      }
    }
}

// dM [16][O][tiles] from dy for images [first, first + count).
void transform_output_gradients(const Tiling& t, const float* dy, std::int64_t first,
                                std::int64_t count, float* dm) {
  const WinogradShape& s = t.s;
  const std::int64_t ld = stream_stride(count * t.per_image()), oh = s.oh(), ow = s.ow();
  SplitRows split(2 * t.tiles_y, t.tiles_x);
  for (std::int64_t n = 0; n < count; ++n)
    for (std::int64_t oc = 0; oc < s.o; ++oc) {
      split_plane(dy + ((first + n) * s.o + oc) * oh * ow, oh, ow, 0, 0, split);
      for (std::int64_t ty = 0; ty < t.tiles_y; ++ty)
        for (std::int64_t j0 = 0; j0 < t.tiles_x; j0 += kLanes) {
          // A down the columns: (y0, y0 + y1, y0 - y1, -y1), even and odd.
          const Lanes e0 = load(split.even(2 * ty) + j0), e1 = load(split.even(2 * ty + 1) + j0);
          const Lanes o0 = load(split.odd(2 * ty) + j0), o1 = load(split.odd(2 * ty + 1) + j0);
          const Lanes e[4] = {e0, e0 + e1, e0 - e1, -e1}, o[4] = {o0, o0 + o1, o0 - o1, -o1};
          // and along each row.
          float* out = dm + oc * ld + n * t.per_image() + ty * t.tiles_x + j0;
          for (int i = 0; i < 4; ++i) {
            store_unaligned(out + 4 * i * s.o * ld, e[i]);
            store_unaligned(out + (4 * i + 1) * s.o * ld, e[i] + o[i]);
            store_unaligned(out + (4 * i + 2) * s.o * ld, e[i] - o[i]);
            store_unaligned(out + (4 * i + 3) * s.o * ld, -o[i]);
          }
        }
    }
}

// dx = B dV B^T for every tile of images [first, first + count), dV [16][C][tiles]. The tiles
// of a plane are summed into split rows, then into dx: a tile's first two columns into `here`
// at its own index, its last two into `next` at its own index (they belong to element tx + 1;
// one more read-modify-write at tx + 1 would load what the one at tx had just stored).
// Every pixel of dx's planes is written (each lies in some tile), so dx needs no zeros first.
void write_input_gradients(const Tiling& t, const float* dv, std::int64_t first, std::int64_t count,
                           float* dx) {
  const WinogradShape& s = t.s;
  const std::int64_t ld = stream_stride(count * t.per_image());
  SplitRows here(2 * t.tiles_y + 2, t.tiles_x), next(2 * t.tiles_y + 2, t.tiles_x);
  for (std::int64_t n = 0; n < count; ++n)
    for (std::int64_t ic = 0; ic < s.c; ++ic) {
      std::fill(here.data.begin(), here.data.end(), 0.0f);
      std::fill(next.data.begin(), next.data.end(), 0.0f);
      for (std::int64_t ty = 0; ty < t.tiles_y; ++ty)
        for (std::int64_t j0 = 0; j0 < t.tiles_x; j0 += kLanes) {
          // Lanes past the row's last tile read the next row's points, or the stream's slack
          // (stale scratch): they must add nothing.
          const LaneBits valid = lanes_below(t.tiles_x - j0);
          const float* points = dv + ic * ld + n * t.per_image() + ty * t.tiles_x + j0;
          // B down each column l: (v0, v1 - v2 + v3, v1 + v2 - v0, -v3).
          Lanes c[4][4];  // [row][column]
          for (int l = 0; l < 4; ++l) {
            const Lanes v0 = load(points + l * s.c * ld), v1 = load(points + (4 + l) * s.c * ld),
                        v2 = load(points + (8 + l) * s.c * ld),
                        v3 = load(points + (12 + l) * s.c * ld);
            c[0][l] = v0, c[1][l] = v1 - v2 + v3, c[2][l] = v1 + v2 - v0, c[3][l] = -v3;
          }
          // and along each row: columns (c0, c1 - c2 + c3, c1 + c2 - c0, -c3) at 2 tx .. 2 tx + 3.
          for (int i = 0; i < 4; ++i) {
            const Lanes* q = c[i];
            const std::int64_t r = 2 * ty + i;
            add_to(here.even(r) + j0, masked(q[0], valid));
            add_to(here.odd(r) + j0, masked(q[1] - q[2] + q[3], valid));
            add_to(next.even(r) + j0, masked(q[1] + q[2] - q[0], valid));
            add_to(next.odd(r) + j0, masked(-q[3], valid));
          }
        }
      float* plane = dx + ((first + n) * s.c + ic) * s.h * s.w;
      for (std::int64_t r = 0; r < here.rows; ++r) {
        const std::int64_t y = r - s.pad_h;
        if (y < 0 || y >= s.h) continue;
        float* __restrict even = here.even(r);
        float* __restrict odd = here.odd(r);
        const float* __restrict even_before = next.even(r);
        const float* __restrict odd_before = next.odd(r);
        for (std::int64_t j = 1; j < here.width; ++j)
          even[j] += even_before[j - 1], odd[j] += odd_before[j - 1];
        float* __restrict row = plane + y * s.w;
        const std::int64_t offset = -s.pad_w;
        const auto [lo, hi] = inner_pairs(s.w, offset, here.width);
        const auto edge = [&](std::int64_t j) {
          const std::int64_t xe = 2 * j + offset, xo = xe + 1;
          if (xe >= 0 && xe < s.w) row[xe] = even[j];
          if (xo >= 0 && xo < s.w) row[xo] = odd[j];
        };
        for (std::int64_t j = 0; j < lo; ++j) edge(j);
        float* __restrict to = row + offset;
        for (std::int64_t j = lo; j < hi; ++j) to[2 * j] = even[j], to[2 * j + 1] = odd[j];
        for (std::int64_t j = hi; j < here.width && 2 * j + offset < s.w; ++j) edge(j);
      }
    }
}

// The filter transform U = G g G^T is linear in g's 9 taps: U's point (i, j) is the sum over
// taps (a, b) of G[i][a] G[j][b] g[a][b], a 16 x 9 matrix (G's Kronecker square). So for every
// (output, input) channel pair at once, U [16][O C] = K w^T with w viewed as [O C][9], and the
// weight gradient G^T dU G is dw [O C][9] = dU^T K: two small GEMMs.
constexpr float kG[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};

// K [16][9], built once.
const float* filter_transform_matrix() {
  static const std::array<float, kPoints* 9> k = [] {
    std::array<float, kPoints * 9> m{};
    for (int i = 0; i < 4; ++i)
      for (int j = 0; j < 4; ++j)
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) m[(4 * i + j) * 9 + 3 * a + b] = kG[i][a] * kG[j][b];
    return m;
  }();
  return k.data();
}

// dw [O][C][3][3] from dU [16][O][C].
void write_filter_gradients(const WinogradShape& s, const float* du, float* dw) {
  const std::int64_t pairs = s.o * s.c;
  gemm<float>(true, false, pairs, 9, kPoints, 1.0f, du, pairs, filter_transform_matrix(), 9, 0.0f,
              dw, 9);
}

// Calls f(first, count) for consecutive blocks of images, the blocks of a thread's share in turn,
// over the kernel thread pool.
template <class F>
void for_each_block(const Tiling& t, F f) {
  parallel_for(t.s.n, 1, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t first = begin; first < end; first += t.images_per_block())
      f(first, std::min(end - first, t.images_per_block()));
  });
}

Tensor scratch(std::int64_t elements) {
  return Tensor::empty({elements}, DType::Float32);
}

}  // namespace

bool winograd_applies(std::int64_t kh, std::int64_t kw, std::int64_t stride_h,
                      std::int64_t stride_w, std::int64_t dilation_h, std::int64_t dilation_w,
                      std::int64_t groups, std::int64_t c, std::int64_t o) {
  constexpr std::int64_t kMinChannels = 8;
  return kh == 3 && kw == 3 && stride_h == 1 && stride_w == 1 && dilation_h == 1 &&
         dilation_w == 1 && groups == 1 && c >= kMinChannels && o >= kMinChannels;
}

Tensor winograd_filters(const WinogradShape& s, const float* w) {
  const std::int64_t pairs = s.o * s.c;
  Tensor u = Tensor::empty({kPoints, s.o, s.c}, DType::Float32);
  gemm<float>(false, true, kPoints, pairs, 9, 1.0f, filter_transform_matrix(), 9, w, 9, 0.0f,
              u.data<float>(), pairs);
  return u;
}

void winograd_forward(const WinogradShape& s, const float* x, const float* filters,
                      const float* bias, ConvEpilogue epilogue, float* y) {
  const Tiling t = tiling(s);
  const float* u = filters;
  SingleThreadedBlas blas_on_each_pool_thread;
  // With fewer images than pool threads (batch-1 inference), the one block's channels and 16
  // products are what is shared out instead.
  const bool split_block = s.n < num_threads() && !in_parallel_region();
  const auto run = [&](std::int64_t n, const std::function<void(std::int64_t, std::int64_t)>& f) {
    if (split_block)
      parallel_for(n, 1, f);
    else
      f(0, n);
  };
  for_each_block(t, [&](std::int64_t first, std::int64_t count) {
    const std::int64_t tiles = count * t.per_image(), ld = stream_stride(tiles);
    Tensor v_buffer = scratch(kPoints * s.c * ld), m_buffer = scratch(kPoints * s.o * ld);
    float *v = v_buffer.data<float>(), *m = m_buffer.data<float>();
    run(s.c,
        [&](std::int64_t c0, std::int64_t c1) { transform_inputs(t, x, first, count, c0, c1, v); });
    run(kPoints, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t xi = begin; xi < end; ++xi)
        gemm<float>(false, false, s.o, tiles, s.c, 1.0f, u + xi * s.o * s.c, s.c, v + xi * s.c * ld,
                    ld, 0.0f, m + xi * s.o * ld, ld);
    });
    run(s.o, [&](std::int64_t o0, std::int64_t o1) {
      transform_outputs(t, m, bias, epilogue, first, count, o0, o1, y);
    });
  });
}

void winograd_backward(const WinogradShape& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw) {
  const Tiling t = tiling(s);
  const Tensor u_buffer = winograd_filters(s, w);
  const float* u = u_buffer.data<float>();
  std::vector<float> du_total(dw ? static_cast<std::size_t>(kPoints * s.o * s.c) : 0, 0.0f);
  std::mutex merge;
  SingleThreadedBlas blas_on_each_pool_thread;
  parallel_for(s.n, 1, [&](std::int64_t begin, std::int64_t end) {
    // This thread's share of dU, added to the total once at the end.
    std::vector<float> du(du_total.size(), 0.0f);
    for (std::int64_t first = begin; first < end; first += t.images_per_block()) {
      const std::int64_t count = std::min(end - first, t.images_per_block());
      const std::int64_t tiles = count * t.per_image(), ld = stream_stride(tiles);
      Tensor v_buffer = scratch(kPoints * s.c * ld), dm_buffer = scratch(kPoints * s.o * ld);
      float *v = v_buffer.data<float>(), *dm = dm_buffer.data<float>();
      transform_output_gradients(t, dy, first, count, dm);
      if (dw) {
        transform_inputs(t, x, first, count, 0, s.c, v);
        for (int xi = 0; xi < kPoints; ++xi)
          gemm<float>(false, true, s.o, s.c, tiles, 1.0f, dm + xi * s.o * ld, ld, v + xi * s.c * ld,
                      ld, 1.0f, du.data() + xi * s.o * s.c, s.c);
      }
      if (dx) {
        float* dv = v;  // V is no longer needed
        for (int xi = 0; xi < kPoints; ++xi)
          gemm<float>(true, false, s.c, tiles, s.o, 1.0f, u + xi * s.o * s.c, s.c,
                      dm + xi * s.o * ld, ld, 0.0f, dv + xi * s.c * ld, ld);
        write_input_gradients(t, dv, first, count, dx);
      }
    }
    if (dw) {
      std::lock_guard lock(merge);
      for (std::size_t i = 0; i < du.size(); ++i) du_total[i] += du[i];
    }
  });
  if (dw) write_filter_gradients(s, du_total.data(), dw);
}

}  // namespace lathe::detail
