#pragma once
// Internal: what the kernels share: numpy broadcasting, index iteration, allocation with the size
// limit checked, small constructors of values and tensors.
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "src/onnx/import/graph.h"

namespace lathe::onnx_detail {

// Row-major strides of a contiguous shape, in elements.
inline std::vector<std::int64_t> contiguous_strides(const Shape& shape) {
  std::vector<std::int64_t> strides(shape.size(), 1);
  for (std::size_t k = shape.size(); k-- > 1;) strides[k - 1] = strides[k] * shape[k];
  return strides;
}

// The numpy broadcast of `shapes`, or an error naming the node.
inline Shape broadcast_shapes(const OpContext& ctx, const std::vector<Shape>& shapes) {
  std::size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  Shape out(rank, 1);
  for (const auto& s : shapes)
    for (std::size_t k = 0; k < s.size(); ++k) {
      std::int64_t& o = out[rank - s.size() + k];
      const std::int64_t d = s[k];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string listed;
      for (const auto& t : shapes) listed += (listed.empty() ? "" : " and ") + shape_str(t);
      ctx.fail(fmt::format("shapes {} do not broadcast", listed));
    }
  return out;
}

// Strides for reading a tensor of `shape` as if broadcast to `out`: 0 on broadcast axes.
inline std::vector<std::int64_t> broadcast_strides(const Shape& shape, const Shape& out) {
  std::vector<std::int64_t> strides(out.size(), 0);
  const auto own = contiguous_strides(shape);
  for (std::size_t k = 0; k < shape.size(); ++k) {
    const std::size_t o = out.size() - shape.size() + k;
    strides[o] = shape[k] == 1 ? 0 : own[k];
  }
  return strides;
}

// Calls f(k, offsets) for every element k of `out` in row-major order, with offsets[i] the
// element of input i that broadcasts to it.
template <class F>
void for_each_broadcast(const Shape& out, const std::vector<std::vector<std::int64_t>>& strides,
                        F&& f) {
  const std::int64_t n = shape_numel(out);
  const std::size_t inputs = strides.size();
  std::vector<std::int64_t> index(out.size(), 0), offsets(inputs, 0);
  for (std::int64_t k = 0; k < n; ++k) {
    f(k, offsets.data());
    for (std::size_t d = out.size(); d-- > 0;) {
      ++index[d];
      for (std::size_t i = 0; i < inputs; ++i) offsets[i] += strides[i][d];
      if (index[d] < out[d]) break;
      for (std::size_t i = 0; i < inputs; ++i) offsets[i] -= strides[i][d] * out[d];
      index[d] = 0;
    }
  }
}

// Calls f(index) with the multi-index of every element of `shape` in row-major order.
template <class F>
void for_each_index(const Shape& shape, F&& f) {
  const std::int64_t n = shape_numel(shape);
  std::vector<std::int64_t> index(shape.size(), 0);
  for (std::int64_t k = 0; k < n; ++k) {
    f(static_cast<const std::vector<std::int64_t>&>(index));
    for (std::size_t d = shape.size(); d-- > 0;) {
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
}

// An uninitialized tensor for a value of `type` and `shape`, after the size limit check.
inline Tensor new_tensor(const OpContext& ctx, const Shape& shape, OnnxType type) {
  ctx.check_size(shape, type);
  return Tensor::empty(shape, onnx_storage_dtype(type));
}

inline std::int64_t rank_of(const OnnxValue& v) {
  return static_cast<std::int64_t>(v.shape().size());
}

// A value of in's type holding `tensor`.
inline OnnxValue like(const OnnxValue& in, Tensor tensor) {
  return make_value(std::move(tensor), in.type);
}

// An int64 1-D index tensor (Tensor::from_indices needs a non-empty vector for its memcpy).
inline Tensor index_tensor(const std::vector<std::int64_t>& index) {
  if (index.empty()) return Tensor::empty({0}, DType::Int64);
  return Tensor::from_indices(index, {static_cast<std::int64_t>(index.size())});
}

// The one element of a 0-D or 1-element tensor, as a double.
inline double scalar_double(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (v.tensor.numel() != 1)
    ctx.fail(fmt::format("{} must hold one value, got shape {}", what, shape_str(v.shape())));
  return visit_storage(v.tensor, [&](auto tag) {
    using T = decltype(tag);
    return static_cast<double>(v.tensor.data<T>()[0]);
  });
}

// A tensor of `shape` and `type` filled with the first element of `scalar` (same storage).
inline Tensor filled(const OpContext& ctx, const Shape& shape, OnnxType type,
                     const Tensor& scalar) {
  Tensor out = new_tensor(ctx, shape, type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    const T v = scalar.data<T>()[0];
    std::fill_n(out.data<T>(), out.numel(), v);
  });
  return out;
}

}  // namespace lathe::onnx_detail
