#pragma once
// Internal: loops shared by the op files. Each takes generic lambdas so one definition serves
// float and double, and splits the work over the kernel thread pool.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <vector>

#include "lathe/error.h"
#include "lathe/parallel.h"
#include "lathe/tensor.h"
#include "src/tensor/dispatch.h"

namespace lathe::detail {

// Partial sums a row reduction keeps: 32 floats are two AVX-512 vectors (four AVX2 ones), so
// additions in flight do not wait on one another. With 8 (one running vector) the CNN's batch
// norm forward and backward on [64, 32, 28, 28] took 2.1-2.5 ms instead of 1.7-1.8.
inline constexpr int kPartialSums = 32;

// The sum of one row, in kPartialSums partial sums that the compiler vectorises. Out of line: see
// normalization.cpp.
template <class T>
[[gnu::noinline]] double row_sum(const T* x, std::int64_t n) {
  T acc[kPartialSums] = {};
  std::int64_t j = 0;
  for (; j + kPartialSums <= n; j += kPartialSums)
    for (int k = 0; k < kPartialSums; ++k) acc[k] += x[j + k];
  double sum = 0;
  for (int k = 0; k < kPartialSums; ++k) sum += acc[k];
  for (; j < n; ++j) sum += x[j];
  return sum;
}

// The grain of a parallel_for over items of `values_per_item` values each (image planes,
// channels): at least kParallelGrain values per worker, so a small input (a batch-1 image) runs
// on the caller, where the hand-off to a worker cost more than the work.
inline std::int64_t grain_for(std::int64_t values_per_item) {
  return std::max<std::int64_t>(1, kParallelGrain / std::max<std::int64_t>(1, values_per_item));
}

// out[i] = f(a[i]) for a floating tensor; returns a new tensor of a's shape and dtype.
template <class F>
Tensor map_unary(const char* op, const Tensor& a, F f) {
  require_floating(op, a);
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* in = a.data<T>();
    T* o = out.data<T>();
    parallel_for(a.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(f(in[i]));
    });
  });
  return out;
}

// out[i] = f(a[i], b[i]) for two tensors of one shape and dtype (gradients and their inputs).
template <class F>
Tensor map_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  require_floating(op, a);
  require_same_dtype(op, a, b);
  if (a.shape() != b.shape())
    throw Error(
        fmt::format("{}: shapes {} and {} differ", op, shape_str(a.shape()), shape_str(b.shape())));
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    T* o = out.data<T>();
    parallel_for(a.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(f(x[i], y[i]));
    });
  });
  return out;
}

// NumPy broadcasting of two shapes; the error names the op, both shapes and the first clash.
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);

// Strides (in elements) that read a contiguous tensor of `shape` as if it had `target` shape:
// broadcast axes get stride 0. `shape` must broadcast to `target`.
std::vector<std::int64_t> broadcast_strides(const Shape& shape, const Shape& target);

// Walks `shape` row by row (all axes but the last), tracking one offset per input; calls
// row(out_row_start, offsets) for rows [begin, end).
template <std::size_t N, class Row>
void for_each_row(const Shape& shape, const std::array<std::vector<std::int64_t>, N>& strides,
                  std::int64_t begin, std::int64_t end, Row row) {
  const std::size_t outer_rank = shape.empty() ? 0 : shape.size() - 1;
  std::vector<std::int64_t> index(outer_rank, 0);
  std::array<std::int64_t, N> offsets{};
  std::int64_t rest = begin;
  for (std::size_t axis = outer_rank; axis-- > 0;) {
    index[axis] = rest % shape[axis];
    rest /= shape[axis];
    for (std::size_t k = 0; k < N; ++k) offsets[k] += index[axis] * strides[k][axis];
  }
  const std::int64_t inner = shape.empty() ? 1 : shape.back();
  for (std::int64_t r = begin; r < end; ++r) {
    row(r * inner, offsets);
    for (std::size_t axis = outer_rank; axis-- > 0;) {
      for (std::size_t k = 0; k < N; ++k) offsets[k] += strides[k][axis];
      if (++index[axis] < shape[axis]) break;
      for (std::size_t k = 0; k < N; ++k) offsets[k] -= index[axis] * strides[k][axis];
      index[axis] = 0;
    }
  }
}

// out = f(a, b) with broadcasting; a and b have one floating dtype.
template <class F>
Tensor broadcast_binary(const char* op, const Tensor& a, const Tensor& b, F f) {
  require_floating(op, a);
  require_floating(op, b);
  require_same_dtype(op, a, b);
  const Shape shape = broadcast_shapes(op, a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, a.dtype());
  dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    T* o = out.data<T>();
    const std::int64_t n = out.numel();
    if (a.shape() == b.shape()) {
      parallel_for(n, kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t i = begin; i < end; ++i) o[i] = static_cast<T>(f(x[i], y[i]));
      });
      return;
    }
    if (n == 0) return;
    const std::array<std::vector<std::int64_t>, 2> strides{broadcast_strides(a.shape(), shape),
                                                           broadcast_strides(b.shape(), shape)};
    const std::int64_t inner = shape.empty() ? 1 : shape.back();
    const std::int64_t sa = shape.empty() ? 0 : strides[0].back();
    const std::int64_t sb = shape.empty() ? 0 : strides[1].back();
    const std::int64_t rows = n / inner;
    parallel_for(rows, std::max<std::int64_t>(1, kParallelGrain / inner),
                 [&](std::int64_t begin, std::int64_t end) {
                   for_each_row<2>(shape, strides, begin, end, [&](std::int64_t at, auto offsets) {
                     const T* px = x + offsets[0];
                     const T* py = y + offsets[1];
                     T* po = o + at;
                     if (sa == 1 && sb == 1) {
                       for (std::int64_t j = 0; j < inner; ++j) po[j] = f(px[j], py[j]);
                     } else if (sa == 1) {
                       for (std::int64_t j = 0; j < inner; ++j) po[j] = f(px[j], py[0]);
                     } else if (sb == 1) {
                       for (std::int64_t j = 0; j < inner; ++j) po[j] = f(px[0], py[j]);
                     } else {
                       for (std::int64_t j = 0; j < inner; ++j) po[j] = f(px[0], py[0]);
                     }
                   });
                 });
  });
  return out;
}

// Copies `a` broadcast up to `shape` (not differentiable; backward closures use it).
Tensor expand_to(const Tensor& a, const Shape& shape);

// The data of an optional tensor (a handle, so the data is writable), null when undefined.
template <class T>
T* data_or_null(Tensor t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// Where a normalization's per-feature tensors (weight, bias, running statistics) line up with its
// input: layer_norm's features are the last axis, batch_norm's the channels (axis 1).
enum class FeatureAxis { Last, Channels };

// Both of a pair of window sizes (stride, padding ...) at least `minimum`: conv2d's and the
// pools' option checks.
inline void require_positive_pair(const char* op, const char* what,
                                  const std::array<std::int64_t, 2>& v, std::int64_t minimum) {
  if (v[0] < minimum || v[1] < minimum)
    throw Error(
        fmt::format("{}: {} must be at least {}, got ({}, {})", op, what, minimum, v[0], v[1]));
}

// Checks one optional per-feature tensor of a normalization: undefined passes, else it must have
// the input's dtype and the shape [features]. The input must have the axis (the op checks first).
inline void require_per_feature(const char* op, const Tensor& input, FeatureAxis axis,
                                const Tensor& t, const char* what) {
  if (!t.defined()) return;
  require_same_dtype(op, input, t);
  const std::int64_t features = axis == FeatureAxis::Last ? input.shape().back() : input.size(1);
  if (t.dim() == 1 && t.shape()[0] == features) return;
  throw Error(fmt::format("{}: {} {} does not match {} of input {}", op, what, shape_str(t.shape()),
                          axis == FeatureAxis::Last ? fmt::format("the last axis ({})", features)
                                                    : fmt::format("the {} channels", features),
                          shape_str(input.shape())));
}

}  // namespace lathe::detail
