// Shape ops: reshape (shares storage), permute/transpose, slice, concat, index_select, gather.
// Forward copies work for every dtype; gradients flow for floating tensors.
#include <cstring>
#include <numeric>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/kernels.h"

namespace lathe {
namespace {

// Calls f(U{}) with an unsigned type the size of one element, for dtype-blind copies.
template <class F>
void dispatch_element_bytes(DType dtype, F&& f) {
  if (dtype_size(dtype) == 4) {
    f(std::uint32_t{});
  } else {
    f(std::uint64_t{});
  }
}

char* bytes_of(Tensor& t) {
  return static_cast<char*>(t.impl()->storage->data());
}
const char* bytes_of(const Tensor& t) {
  return static_cast<const char*>(t.impl()->storage->data());
}

Shape infer_shape(const Tensor& a, const Shape& requested) {
  Shape shape = requested;
  std::int64_t known = 1;
  int inferred = -1;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred >= 0)
        throw Error(fmt::format("reshape: {} -> {}: only one axis may be -1", shape_str(a.shape()),
                                shape_str(requested)));
      inferred = static_cast<int>(i);
    } else if (shape[i] < 0) {
      throw Error(fmt::format("reshape: {} -> {}: negative size {}", shape_str(a.shape()),
                              shape_str(requested), shape[i]));
    } else {
      known *= shape[i];
    }
  }
  if (inferred >= 0 && known != 0 && a.numel() % known == 0) shape[inferred] = a.numel() / known;
  if (shape_numel(shape) != a.numel() || (inferred >= 0 && shape[inferred] == -1))
    throw Error(fmt::format("reshape: cannot reshape {} ({} elements) into {}",
                            shape_str(a.shape()), a.numel(), shape_str(requested)));
  return shape;
}

// Adds the rows of `g` ([outer, count, inner]) into rows `index[k]` of a zero tensor `shape`.
Tensor scatter_rows(const Tensor& g, const Shape& shape, std::int64_t axis,
                    const std::vector<std::int64_t>& index) {
  Tensor grad = Tensor::zeros(shape, g.dtype());
  const auto view = detail::axis_view(shape, axis);
  const auto count = static_cast<std::int64_t>(index.size());
  detail::dispatch_floating(g.dtype(), "scatter backward", [&](auto tag) {
    using T = decltype(tag);
    const T* src = g.data<T>();
    T* dst = grad.data<T>();
    for (std::int64_t o = 0; o < view.outer; ++o)
      for (std::int64_t k = 0; k < count; ++k) {
        const T* from = src + (o * count + k) * view.inner;
        T* to = dst + (o * view.extent + index[k]) * view.inner;
        for (std::int64_t j = 0; j < view.inner; ++j) to[j] += from[j];
      }
  });
  return grad;
}

// Copies rows `index[k]` of `a` along axis into a new tensor with `index.size()` rows there.
Tensor take_rows(const Tensor& a, std::int64_t axis, const std::vector<std::int64_t>& index) {
  const auto view = detail::axis_view(a.shape(), axis);
  Shape shape = a.shape();
  shape[axis] = static_cast<std::int64_t>(index.size());
  Tensor out = Tensor::empty(shape, a.dtype());
  const std::size_t row_bytes = static_cast<std::size_t>(view.inner) * dtype_size(a.dtype());
  const char* src = bytes_of(a);
  char* dst = bytes_of(out);
  for (std::int64_t o = 0; o < view.outer; ++o)
    for (std::size_t k = 0; k < index.size(); ++k)
      std::memcpy(dst + (o * shape[axis] + static_cast<std::int64_t>(k)) * row_bytes,
                  src + (o * view.extent + index[k]) * row_bytes, row_bytes);
  return out;
}

std::vector<std::int64_t> checked_indices(const char* op, const Tensor& indices,
                                          std::int64_t extent, const Tensor& a, std::int64_t axis) {
  detail::require_defined(op, indices, "indices");
  if (indices.dtype() != DType::Int64)
    throw Error(fmt::format("{}: indices must be int64, got {}", op, dtype_name(indices.dtype())));
  const std::int64_t* p = indices.data<std::int64_t>();
  std::vector<std::int64_t> values(p, p + indices.numel());
  for (std::size_t i = 0; i < values.size(); ++i)
    if (values[i] < 0 || values[i] >= extent)
      throw Error(
          fmt::format("{}: index {} at position {} is out of range for axis {} of shape "
                      "{} (allowed 0..{})",
                      op, values[i], i, axis, shape_str(a.shape()), extent - 1));
  return values;
}

}  // namespace

Tensor reshape(const Tensor& a, const Shape& shape) {
  detail::require_defined("reshape", a);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = a.impl()->storage;
  impl->shape = infer_shape(a, shape);
  impl->dtype = a.dtype();
  Tensor out(std::move(impl));
  if (!should_record({&a})) return out;
  return record(Op::Reshape, out, {a},
                [original = a.shape()](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{reshape(g, original)};
                });
}

Tensor permute(const Tensor& a, const std::vector<std::int64_t>& order) {
  detail::require_defined("permute", a);
  const auto rank = a.dim();
  std::vector<std::int64_t> axes(order.size());
  std::vector<bool> seen(rank, false);
  bool valid = static_cast<std::int64_t>(order.size()) == rank;
  for (std::size_t i = 0; valid && i < order.size(); ++i) {
    const auto axis = order[i] < 0 ? order[i] + rank : order[i];
    valid = axis >= 0 && axis < rank && !seen[axis];
    if (valid) seen[axis] = true;
    axes[i] = axis;
  }
  if (!valid)
    throw Error(fmt::format("permute: order [{}] is not a permutation of the {} axes of {}",
                            fmt::join(order, ","), rank, shape_str(a.shape())));

  Shape shape(rank);
  std::vector<std::int64_t> in_strides(rank), strides(rank);
  for (std::int64_t i = rank, s = 1; i-- > 0; s *= a.shape()[i]) in_strides[i] = s;
  for (std::int64_t i = 0; i < rank; ++i) {
    shape[i] = a.shape()[axes[i]];
    strides[i] = in_strides[axes[i]];
  }
  Tensor out = Tensor::empty(shape, a.dtype());
  if (out.numel() > 0) {
    dispatch_element_bytes(a.dtype(), [&](auto tag) {
      using U = decltype(tag);
      const U* src = reinterpret_cast<const U*>(bytes_of(a));
      U* dst = reinterpret_cast<U*>(bytes_of(out));
      const std::array<std::vector<std::int64_t>, 1> row_strides{strides};
      const std::int64_t inner = rank == 0 ? 1 : shape.back();
      const std::int64_t step = rank == 0 ? 0 : strides.back();
      detail::for_each_row<1>(shape, row_strides, 0, out.numel() / inner,
                              [&](std::int64_t at, auto offsets) {
                                for (std::int64_t j = 0; j < inner; ++j)
                                  dst[at + j] = src[offsets[0] + j * step];
                              });
    });
  }
  if (!should_record({&a})) return out;
  std::vector<std::int64_t> inverse(rank);
  for (std::int64_t i = 0; i < rank; ++i) inverse[axes[i]] = i;
  return record(Op::Permute, out, {a}, [inverse](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{permute(g, inverse)};
  });
}

Tensor transpose(const Tensor& a, std::int64_t axis0, std::int64_t axis1) {
  detail::require_defined("transpose", a);
  axis0 = detail::normalize_axis("transpose", axis0, a.shape());
  axis1 = detail::normalize_axis("transpose", axis1, a.shape());
  std::vector<std::int64_t> order(a.dim());
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[axis0], order[axis1]);
  return permute(a, order);
}

Tensor slice(const Tensor& a, std::int64_t axis, std::int64_t start, std::int64_t end,
             std::int64_t step) {
  detail::require_defined("slice", a);
  axis = detail::normalize_axis("slice", axis, a.shape());
  if (step <= 0) throw Error(fmt::format("slice: step must be positive, got {}", step));
  const std::int64_t extent = a.shape()[axis];
  const auto clamp_bound = [extent](std::int64_t i) {
    if (i < 0) i += extent;
    return std::clamp<std::int64_t>(i, 0, extent);
  };
  start = clamp_bound(start);
  end = clamp_bound(end);
  std::vector<std::int64_t> index;
  for (std::int64_t i = start; i < end; i += step) index.push_back(i);
  Tensor out = take_rows(a, axis, index);
  if (!should_record({&a})) return out;
  return record(Op::Slice, out, {a},
                [shape = a.shape(), axis, index](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{scatter_rows(g, shape, axis, index)};
                });
}

Tensor concat(const std::vector<Tensor>& tensors, std::int64_t axis) {
  if (tensors.empty()) throw Error("concat: no tensors given");
  for (const auto& t : tensors) detail::require_defined("concat", t);
  const Tensor& first = tensors.front();
  axis = detail::normalize_axis("concat", axis, first.shape());
  Shape shape = first.shape();
  shape[axis] = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i];
    detail::require_same_dtype("concat", first, t);
    bool compatible = t.dim() == first.dim();
    for (std::int64_t d = 0; compatible && d < first.dim(); ++d)
      compatible = d == axis || t.shape()[d] == first.shape()[d];
    if (!compatible)
      throw Error(fmt::format("concat: tensor {} has shape {}, incompatible with {} along axis {}",
                              i, shape_str(t.shape()), shape_str(first.shape()), axis));
    shape[axis] += t.shape()[axis];
  }
  Tensor out = Tensor::empty(shape, first.dtype());
  const auto view = detail::axis_view(shape, axis);
  const std::size_t element = dtype_size(first.dtype());
  std::int64_t offset = 0;
  for (const Tensor& t : tensors) {
    const std::size_t run = static_cast<std::size_t>(t.shape()[axis] * view.inner) * element;
    for (std::int64_t o = 0; o < view.outer; ++o)
      std::memcpy(bytes_of(out) + (o * view.extent + offset) * view.inner * element,
                  bytes_of(t) + o * run, run);
    offset += t.shape()[axis];
  }
  if (!should_record(tensors)) return out;
  std::vector<std::int64_t> extents;
  for (const Tensor& t : tensors) extents.push_back(t.shape()[axis]);
  return record(
      Op::Concat, out, tensors, [axis, extents](const Tensor& g, const std::vector<bool>& needs) {
        std::vector<Tensor> grads;
        std::int64_t start = 0;
        for (std::size_t i = 0; i < extents.size(); ++i) {
          grads.push_back(needs[i] ? slice(g, axis, start, start + extents[i]) : Tensor());
          start += extents[i];
        }
        return grads;
      });
}

Tensor index_select(const Tensor& a, std::int64_t axis, const Tensor& indices) {
  detail::require_defined("index_select", a);
  axis = detail::normalize_axis("index_select", axis, a.shape());
  if (indices.defined() && indices.dim() != 1)
    throw Error(
        fmt::format("index_select: indices must be 1-D, got shape {}", shape_str(indices.shape())));
  const auto index = checked_indices("index_select", indices, a.shape()[axis], a, axis);
  Tensor out = take_rows(a, axis, index);
  if (!should_record({&a})) return out;
  return record(Op::IndexSelect, out, {a},
                [shape = a.shape(), axis, index](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{scatter_rows(g, shape, axis, index)};
                });
}

Tensor gather(const Tensor& a, std::int64_t axis, const Tensor& indices) {
  detail::require_defined("gather", a);
  axis = detail::normalize_axis("gather", axis, a.shape());
  detail::require_defined("gather", indices, "indices");
  bool compatible = indices.dim() == a.dim();
  for (std::int64_t d = 0; compatible && d < a.dim(); ++d)
    compatible = d == axis || indices.shape()[d] == a.shape()[d];
  if (!compatible)
    throw Error(fmt::format("gather: indices of shape {} must match input {} on every axis but {}",
                            shape_str(indices.shape()), shape_str(a.shape()), axis));
  const auto index = checked_indices("gather", indices, a.shape()[axis], a, axis);
  const auto in_view = detail::axis_view(a.shape(), axis);
  const auto out_view = detail::axis_view(indices.shape(), axis);
  // Offset in `a` of output element i, shared by forward and backward.
  const auto source_offset = [in_view, out_view, index](std::int64_t i) {
    const std::int64_t o = i / (out_view.extent * out_view.inner);
    const std::int64_t j = i % out_view.inner;
    return (o * in_view.extent + index[i]) * in_view.inner + j;
  };
  Tensor out = Tensor::empty(indices.shape(), a.dtype());
  dispatch_element_bytes(a.dtype(), [&](auto tag) {
    using U = decltype(tag);
    const U* src = reinterpret_cast<const U*>(bytes_of(a));
    U* dst = reinterpret_cast<U*>(bytes_of(out));
    for (std::int64_t i = 0; i < out.numel(); ++i) dst[i] = src[source_offset(i)];
  });
  if (!should_record({&a})) return out;
  return record(Op::Gather, out, {a},
                [shape = a.shape(), source_offset](const Tensor& g, const std::vector<bool>&) {
                  Tensor grad = Tensor::zeros(shape, g.dtype());
                  detail::dispatch_floating(g.dtype(), "gather backward", [&](auto tag) {
                    using T = decltype(tag);
                    const T* dy = g.data<T>();
                    T* dx = grad.data<T>();
                    for (std::int64_t i = 0; i < g.numel(); ++i) dx[source_offset(i)] += dy[i];
                  });
                  return std::vector<Tensor>{grad};
                });
}

}  // namespace lathe
