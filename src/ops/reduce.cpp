// Reductions over axes: sum, mean, max (differentiable) and argmax.
#include <algorithm>
#include <cmath>
#include <set>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/kernels.h"

namespace lathe {
namespace {

// Sorted, de-duplicated, non-negative axes; an empty list means every axis.
std::vector<std::int64_t> resolve_axes(const char* op, const std::vector<std::int64_t>& axes,
                                       const Shape& shape) {
  std::set<std::int64_t> resolved;
  if (axes.empty()) {
    for (std::size_t i = 0; i < shape.size(); ++i) resolved.insert(static_cast<std::int64_t>(i));
  }
  for (auto axis : axes) {
    if (!resolved.insert(detail::normalize_axis(op, axis, shape)).second)
      throw Error(
          fmt::format("{}: axis {} is listed twice for shape {}", op, axis, shape_str(shape)));
  }
  return {resolved.begin(), resolved.end()};
}

Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& axes, bool keepdim) {
  Shape out;
  for (std::size_t i = 0; i < shape.size(); ++i) {
    const bool reduced =
        std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(i)) != axes.end();
    if (!reduced) {
      out.push_back(shape[i]);
    } else if (keepdim) {
      out.push_back(1);
    }
  }
  return out;
}

// Sums one axis of a contiguous tensor, keeping it with extent 1.
Tensor sum_one_axis(const Tensor& a, std::int64_t axis) {
  const auto view = detail::axis_view(a.shape(), axis);
  Shape shape = a.shape();
  shape[axis] = 1;
  Tensor out = Tensor::zeros(shape, a.dtype());
  detail::dispatch_floating(a.dtype(), "sum", [&](auto tag) {
    using T = decltype(tag);
    const T* in = a.data<T>();
    T* o = out.data<T>();
    if (view.inner == 1) {  // contiguous runs: accumulate in double for accuracy
      parallel_for(view.outer,
                   std::max<std::int64_t>(
                       1, detail::kParallelGrain / std::max<std::int64_t>(view.extent, 1)),
                   [&](std::int64_t begin, std::int64_t end) {
                     for (std::int64_t i = begin; i < end; ++i) {
                       double acc = 0;
                       const T* row = in + i * view.extent;
                       for (std::int64_t k = 0; k < view.extent; ++k) acc += row[k];
                       o[i] = static_cast<T>(acc);
                     }
                   });
      return;
    }
    parallel_for(view.outer, 1, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) {
        T* dst = o + i * view.inner;
        for (std::int64_t k = 0; k < view.extent; ++k) {
          const T* src = in + (i * view.extent + k) * view.inner;
          for (std::int64_t j = 0; j < view.inner; ++j) dst[j] += src[j];
        }
      }
    });
  });
  return out;
}

Tensor sum_kernel(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) {
  Tensor out = a;
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) out = sum_one_axis(out, *it);
  if (axes.empty()) out = out.clone();
  return reshape(out, reduced_shape(a.shape(), axes, keepdim));
}

// Index of the first maximum along axis, and the maximum itself, for every [outer, inner] slot.
template <class T>
void max_along(const Tensor& a, std::int64_t axis, T* values, std::int64_t* indices) {
  const auto view = detail::axis_view(a.shape(), axis);
  const T* in = a.data<T>();
  for (std::int64_t i = 0; i < view.outer; ++i) {
    for (std::int64_t j = 0; j < view.inner; ++j) {
      const T* base = in + i * view.extent * view.inner + j;
      std::int64_t best = 0;
      T best_value = base[0];
      for (std::int64_t k = 1; k < view.extent && !std::isnan(best_value); ++k) {
        const T value = base[k * view.inner];
        if (value > best_value || std::isnan(value)) {  // NaN wins, as in PyTorch
          best = k;
          best_value = value;
        }
      }
      if (values) values[i * view.inner + j] = base[best * view.inner];
      if (indices) indices[i * view.inner + j] = best;
    }
  }
}

void require_nonempty_axis(const char* op, const Tensor& a, std::int64_t axis) {
  if (a.shape()[axis] == 0)
    throw Error(fmt::format("{}: axis {} of shape {} is empty", op, axis, shape_str(a.shape())));
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) {
  detail::require_floating("sum", a);
  const auto resolved = resolve_axes("sum", axes, a.shape());
  Tensor out;
  {
    NoGradGuard inner;  // the reshape inside the kernel is not part of the graph
    out = sum_kernel(a, resolved, keepdim);
  }
  if (!should_record({&a})) return out;
  return record(Op::Sum, out, {a},
                [shape = a.shape(), resolved](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{
                      detail::expand_to(reshape(g, reduced_shape(shape, resolved, true)), shape)};
                });
}

Tensor mean(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdim) {
  detail::require_floating("mean", a);
  const auto resolved = resolve_axes("mean", axes, a.shape());
  std::int64_t count = 1;
  for (auto axis : resolved) count *= a.shape()[axis];
  Tensor out;
  {
    NoGradGuard inner;
    out = sum_kernel(a, resolved, keepdim) / static_cast<double>(count);
  }
  if (!should_record({&a})) return out;
  return record(Op::Mean, out, {a},
                [shape = a.shape(), resolved, count](const Tensor& g, const std::vector<bool>&) {
                  Tensor scaled = g / static_cast<double>(count);
                  return std::vector<Tensor>{detail::expand_to(
                      reshape(scaled, reduced_shape(shape, resolved, true)), shape)};
                });
}

Tensor max(const Tensor& a, std::int64_t axis, bool keepdim) {
  detail::require_floating("max", a);
  axis = detail::normalize_axis("max", axis, a.shape());
  require_nonempty_axis("max", a, axis);
  Tensor indices = Tensor::empty(reduced_shape(a.shape(), {axis}, keepdim), DType::Int64);
  Tensor out = Tensor::empty(indices.shape(), a.dtype());
  detail::dispatch_floating(a.dtype(), "max", [&](auto tag) {
    using T = decltype(tag);
    max_along<T>(a, axis, out.data<T>(), indices.data<std::int64_t>());
  });
  if (!should_record({&a})) return out;
  return record(Op::Max, out, {a},
                [shape = a.shape(), axis, indices](const Tensor& g, const std::vector<bool>&) {
                  // The gradient flows to the first maximum only.
                  Tensor grad = Tensor::zeros(shape, g.dtype());
                  const auto view = detail::axis_view(shape, axis);
                  const std::int64_t* idx = indices.data<std::int64_t>();
                  detail::dispatch_floating(g.dtype(), "max backward", [&](auto tag) {
                    using T = decltype(tag);
                    const T* dy = g.data<T>();
                    T* dx = grad.data<T>();
                    for (std::int64_t i = 0; i < view.outer; ++i)
                      for (std::int64_t j = 0; j < view.inner; ++j) {
                        const auto slot = i * view.inner + j;
                        dx[(i * view.extent + idx[slot]) * view.inner + j] = dy[slot];
                      }
                  });
                  return std::vector<Tensor>{grad};
                });
}

Tensor argmax(const Tensor& a, std::int64_t axis, bool keepdim) {
  detail::require_floating("argmax", a);
  axis = detail::normalize_axis("argmax", axis, a.shape());
  require_nonempty_axis("argmax", a, axis);
  Tensor indices = Tensor::empty(reduced_shape(a.shape(), {axis}, keepdim), DType::Int64);
  detail::dispatch_floating(a.dtype(), "argmax", [&](auto tag) {
    using T = decltype(tag);
    max_along<T>(a, axis, nullptr, indices.data<std::int64_t>());
  });
  return indices;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const Shape target = detail::broadcast_shapes("sum_to", shape, a.shape());
  if (target != a.shape())
    throw Error(fmt::format("sum_to: shape {} cannot be summed to {}", shape_str(a.shape()),
                            shape_str(shape)));
  std::vector<std::int64_t> axes;
  const std::size_t lead = a.shape().size() - shape.size();
  for (std::size_t i = 0; i < a.shape().size(); ++i)
    if (i < lead || (shape[i - lead] == 1 && a.shape()[i] != 1))
      axes.push_back(static_cast<std::int64_t>(i));
  if (axes.empty()) return reshape(a, shape);
  return reshape(sum(a, axes, true), shape);
}

}  // namespace lathe
