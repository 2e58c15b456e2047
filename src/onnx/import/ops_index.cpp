// ONNX operators: index. Selections (Gather*, Compress, ReverseSequence, TopK and Unique values)
// go through lathe's index_select so that float gradients reach their input; the rest are
// generic loops over the storage type.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

namespace {

using Index = std::int64_t;

// A tensor seen as [outer, extent, inner] around `axis`.
struct AxisView {
  Index outer = 1, extent = 1, inner = 1;
};

Index extent_product(const Shape& shape, std::size_t begin, std::size_t end) {
  Index n = 1;
  for (std::size_t d = begin; d < end; ++d) n *= shape[d];
  return n;
}

AxisView axis_view(const Shape& shape, Index axis) {
  const auto a = static_cast<std::size_t>(axis);
  return {extent_product(shape, 0, a), shape[a], extent_product(shape, a + 1, shape.size())};
}

// `i` as an index into an axis of `extent`, negative counting from the end; fails when out of
// range.
Index checked_index(const OpContext& ctx, Index i, Index extent, const char* what) {
  const Index r = i < 0 ? i + extent : i;
  if (r < 0 || r >= extent)
    ctx.fail(fmt::format("{} {} is out of range for an axis of size {}", what, i, extent));
  return r;
}

// The elements of an index input (ONNX allows int32 and int64).
const Index* index_data(const OpContext& ctx, const OnnxValue& v, const char* what) {
  if (v.type != OnnxType::Int64 && v.type != OnnxType::Int32)
    ctx.fail(fmt::format("{} must be int32 or int64, got {}", what, onnx_type_name(v.type)));
  return v.tensor.data<Index>();
}

// The elements of any numeric value as doubles.
std::vector<double> as_doubles(const OnnxValue& v) {
  std::vector<double> out(static_cast<std::size_t>(v.tensor.numel()));
  visit_storage(v.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = v.tensor.data<T>();
    for (std::size_t k = 0; k < out.size(); ++k)
      out[k] = v.type == OnnxType::Uint64 ? static_cast<double>(static_cast<std::uint64_t>(p[k]))
                                          : static_cast<double>(p[k]);
  });
  return out;
}

// An empty index list with room for `shape`'s elements, after the size check (the list is as
// large as an int64 tensor of that shape).
std::vector<Index> index_list(const OpContext& ctx, const Shape& shape) {
  ctx.check_size(shape, OnnxType::Int64);
  std::vector<Index> list;
  list.reserve(static_cast<std::size_t>(shape_numel(shape)));
  return list;
}

// A value of `shape` made of the rows (`inner` consecutive elements each) of `v` that `rows`
// lists; through index_select, so a float gradient reaches `v`.
OnnxValue select_rows(const OpContext& ctx, const OnnxValue& v, const std::vector<Index>& rows,
                      Index inner, const Shape& shape) {
  ctx.check_size(shape, v.type);
  // Empty rows: nothing to pick, but the (empty) result stays on the gradient's path.
  const bool empty = inner == 0;
  const Tensor table = reshape(v.tensor, {empty ? 0 : v.tensor.numel() / inner, empty ? 1 : inner});
  const Index count = empty ? 0 : static_cast<Index>(rows.size());
  const Tensor picked =
      index_select(table, 0, Tensor::from_indices(empty ? std::vector<Index>{} : rows, {count}));
  return make_value(reshape(picked, shape), v.type);
}

// An int64 value from a list.
OnnxValue int64_value(const std::vector<Index>& values, const Shape& shape) {
  return make_value(Tensor::from_indices(values, shape), OnnxType::Int64);
}

// A copy of `v` with its own storage, for the scatter kernels to write into.
Tensor copy_of(const OpContext& ctx, const OnnxValue& v) {
  Tensor out = new_tensor(ctx, v.shape(), v.type);
  visit_storage(v.tensor, [&](auto tag) {
    using T = decltype(tag);
    std::copy_n(v.tensor.data<T>(), v.tensor.numel(), out.data<T>());
  });
  return out;
}

template <class T>
bool is_nan(T x) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isnan(x);
  else
    return false;
}

// A strict weak order where NaN is above every number (numpy's sort order).
template <class T>
bool value_less(T a, T b) {
  if (is_nan(a)) return false;
  return is_nan(b) || a < b;
}

// ---- Gather family ----

std::vector<OnnxValue> gather(const OpContext& ctx) {
  const OnnxValue& data = ctx.input(0);
  const OnnxValue& indices = ctx.input(1);
  const Shape& ds = data.shape();
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", 0), static_cast<Index>(ds.size()));
  const Index* p = index_data(ctx, indices, "indices");
  Shape out(ds.begin(), ds.begin() + axis);
  out.insert(out.end(), indices.shape().begin(), indices.shape().end());
  out.insert(out.end(), ds.begin() + axis + 1, ds.end());
  ctx.check_size(out, data.type);
  std::vector<Index> rows(static_cast<std::size_t>(indices.tensor.numel()));
  for (std::size_t k = 0; k < rows.size(); ++k)
    rows[k] = checked_index(ctx, p[k], ds[static_cast<std::size_t>(axis)], "index");
  const Tensor picked = index_select(data.tensor, axis,
                                     Tensor::from_indices(rows, {static_cast<Index>(rows.size())}));
  return {make_value(reshape(picked, out), data.type)};
}

// GatherElements and ScatterElements: indices of data's rank, no larger than data off `axis`.
void check_element_indices(const OpContext& ctx, const Shape& is, const Shape& ds, Index axis) {
  if (is.size() != ds.size())
    ctx.fail(fmt::format("indices {} must have the rank of data {}", shape_str(is), shape_str(ds)));
  for (Index d = 0; d < static_cast<Index>(ds.size()); ++d)
    if (d != axis && is[d] > ds[d])
      ctx.fail(
          fmt::format("indices {} exceed data {} on axis {}", shape_str(is), shape_str(ds), d));
}

std::vector<OnnxValue> gather_elements(const OpContext& ctx) {
  const OnnxValue& data = ctx.input(0);
  const OnnxValue& indices = ctx.input(1);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  const Index rank = static_cast<Index>(ds.size());
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", 0), rank);
  check_element_indices(ctx, is, ds, axis);
  const Index* p = index_data(ctx, indices, "indices");
  const auto strides = contiguous_strides(ds);
  std::vector<Index> offsets = index_list(ctx, is);
  for_each_index(is, [&](const std::vector<Index>& i) {
    Index off = 0;
    for (Index d = 0; d < rank; ++d)
      off +=
          strides[d] * (d == axis ? checked_index(ctx, p[offsets.size()], ds[d], "index") : i[d]);
    offsets.push_back(off);
  });
  return {select_rows(ctx, data, offsets, 1, is)};
}

std::vector<OnnxValue> gather_nd(const OpContext& ctx) {
  const OnnxValue& data = ctx.input(0);
  const OnnxValue& indices = ctx.input(1);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  const Index b = ctx.attr_int("batch_dims", 0);
  const Index r = static_cast<Index>(ds.size()), q = static_cast<Index>(is.size());
  if (q < 1 || r < 1) ctx.fail("data and indices must have rank >= 1");
  if (b < 0 || b >= std::min(q, r))
    ctx.fail(fmt::format("batch_dims {} must be below the ranks of data and indices", b));
  for (Index d = 0; d < b; ++d)
    if (is[d] != ds[d])
      ctx.fail(fmt::format("batch dimensions of indices {} and data {} differ", shape_str(is),
                           shape_str(ds)));
  const Index m = is[q - 1];
  if (m < 1 || m > r - b)
    ctx.fail(
        fmt::format("the last dimension of indices {} must be in 1..{}", shape_str(is), r - b));
  Shape out(is.begin(), is.end() - 1);
  out.insert(out.end(), ds.begin() + b + m, ds.end());
  const Index batches = extent_product(ds, 0, b), per_batch = extent_product(ds, b, b + m);
  const Index tuples = extent_product(is, b, q - 1), inner = extent_product(ds, b + m, r);
  const Index* p = index_data(ctx, indices, "indices");
  std::vector<Index> rows = index_list(ctx, Shape(is.begin(), is.end() - 1));
  for (Index batch = 0; batch < batches; ++batch)
    for (Index t = 0; t < tuples; ++t) {
      const Index* tuple = p + (batch * tuples + t) * m;
      Index linear = 0;
      for (Index j = 0; j < m; ++j)
        linear = linear * ds[b + j] + checked_index(ctx, tuple[j], ds[b + j], "index");
      rows.push_back(batch * per_batch + linear);
    }
  return {select_rows(ctx, data, rows, inner, out)};
}

// ---- Scatter family ----

enum class Reduction { None, Add, Mul, Max, Min };

Reduction reduction_attr(const OpContext& ctx) {
  const std::string name = ctx.attr_string("reduction", "none");
  if (name == "none") return Reduction::None;
  if (name == "add") return Reduction::Add;
  if (name == "mul") return Reduction::Mul;
  if (name == "max") return Reduction::Max;
  if (name == "min") return Reduction::Min;
  ctx.fail(fmt::format("unknown reduction '{}'", name));
}

// `into` combined with `x`; integers wrap (two's complement) instead of overflowing.
template <class T>
void combine(T& into, T x, Reduction reduction) {
  using U = std::conditional_t<std::is_integral_v<T>, std::uint64_t, T>;
  switch (reduction) {
    case Reduction::None:
      into = x;
      break;
    case Reduction::Add:
      into = static_cast<T>(static_cast<U>(into) + static_cast<U>(x));
      break;
    case Reduction::Mul:
      into = static_cast<T>(static_cast<U>(into) * static_cast<U>(x));
      break;
    case Reduction::Max:
      into = std::max(into, x);
      break;
    case Reduction::Min:
      into = std::min(into, x);
      break;
  }
}

void check_same_type(const OpContext& ctx, const OnnxValue& data, const OnnxValue& updates) {
  if (data.type != updates.type)
    ctx.fail(fmt::format("updates ({}) must have the type of data ({})",
                         onnx_type_name(updates.type), onnx_type_name(data.type)));
}

std::vector<OnnxValue> scatter_elements(const OpContext& ctx) {
  const OnnxValue& data = ctx.input(0);
  const OnnxValue& indices = ctx.input(1);
  const OnnxValue& updates = ctx.input(2);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  const Index rank = static_cast<Index>(ds.size());
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", 0), rank);
  const Reduction reduction = reduction_attr(ctx);
  check_same_type(ctx, data, updates);
  if (updates.shape() != is)
    ctx.fail(fmt::format("updates {} must have the shape of indices {}", shape_str(updates.shape()),
                         shape_str(is)));
  check_element_indices(ctx, is, ds, axis);
  const Index* p = index_data(ctx, indices, "indices");
  const auto strides = contiguous_strides(ds);
  Tensor out = copy_of(ctx, data);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* u = updates.tensor.data<T>();
    Index k = 0;
    for_each_index(is, [&](const std::vector<Index>& i) {
      Index off = 0;
      for (Index d = 0; d < rank; ++d)
        off += strides[d] * (d == axis ? checked_index(ctx, p[k], ds[d], "index") : i[d]);
      combine(o[off], u[k], reduction);
      ++k;
    });
  });
  return {make_value(std::move(out), data.type)};
}

std::vector<OnnxValue> scatter_nd(const OpContext& ctx) {
  const OnnxValue& data = ctx.input(0);
  const OnnxValue& indices = ctx.input(1);
  const OnnxValue& updates = ctx.input(2);
  const Shape& ds = data.shape();
  const Shape& is = indices.shape();
  const Reduction reduction = reduction_attr(ctx);
  check_same_type(ctx, data, updates);
  const Index r = static_cast<Index>(ds.size()), q = static_cast<Index>(is.size());
  if (q < 1) ctx.fail("indices must have rank >= 1");
  const Index k = is[q - 1];
  if (k < 1 || k > r)
    ctx.fail(fmt::format("the last dimension of indices {} must be in 1..{}", shape_str(is), r));
  Shape expected(is.begin(), is.end() - 1);
  expected.insert(expected.end(), ds.begin() + k, ds.end());
  if (updates.shape() != expected)
    ctx.fail(fmt::format("updates {} must have shape {}", shape_str(updates.shape()),
                         shape_str(expected)));
  const Index tuples = extent_product(is, 0, q - 1), inner = extent_product(ds, k, r);
  const Index* p = index_data(ctx, indices, "indices");
  Tensor out = copy_of(ctx, data);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    T* o = out.data<T>();
    const T* u = updates.tensor.data<T>();
    for (Index t = 0; t < tuples; ++t) {
      Index linear = 0;
      for (Index j = 0; j < k; ++j)
        linear = linear * ds[j] + checked_index(ctx, p[t * k + j], ds[j], "index");
      for (Index e = 0; e < inner; ++e) combine(o[linear * inner + e], u[t * inner + e], reduction);
    }
  });
  return {make_value(std::move(out), data.type)};
}

// ---- Selection by condition ----

std::vector<OnnxValue> one_hot(const OpContext& ctx) {
  const OnnxValue& indices = ctx.input(0);
  const OnnxValue& values = ctx.input(2);
  const std::vector<double> depth_values = as_doubles(ctx.input(1));
  if (depth_values.size() != 1) ctx.fail("depth must have exactly one element");
  const double depth_value = depth_values[0];
  if (!(depth_value >= 1 && depth_value < 9e18))
    ctx.fail(fmt::format("depth {} must be a positive number", depth_value));
  const auto depth = static_cast<Index>(depth_value);
  if (values.tensor.numel() != 2)
    ctx.fail(fmt::format("values must hold [off, on], got shape {}", shape_str(values.shape())));
  const Shape& is = indices.shape();
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", -1), static_cast<Index>(is.size()) + 1);
  Shape out = is;
  out.insert(out.begin() + axis, depth);
  Tensor result = new_tensor(ctx, out, values.type);
  const std::vector<double> where = as_doubles(indices);
  const Index outer = extent_product(is, 0, static_cast<std::size_t>(axis));
  const Index inner = extent_product(is, static_cast<std::size_t>(axis), is.size());
  visit_storage(result, [&](auto tag) {
    using T = decltype(tag);
    const T off = values.tensor.data<T>()[0], on = values.tensor.data<T>()[1];
    T* o = result.data<T>();
    for (Index a = 0; a < outer; ++a)
      for (Index i = 0; i < inner; ++i) {
        double at = std::trunc(where[a * inner + i]);
        if (at < 0) at += static_cast<double>(depth);
        for (Index d = 0; d < depth; ++d)
          o[(a * depth + d) * inner + i] = static_cast<double>(d) == at ? on : off;
      }
  });
  return {make_value(std::move(result), values.type)};
}

// Compress and Unique along the optional attribute `axis`: that axis's view and the input's
// shape, or, without one, the flattened input (one axis of every element) and shape [0].
struct OptionalAxis {
  AxisView view;
  Shape out;
  Index axis = 0;
};
OptionalAxis optional_axis(const OpContext& ctx, const OnnxValue& x) {
  if (!ctx.has_attr("axis")) return {AxisView{1, x.tensor.numel(), 1}, Shape{0}, 0};
  const Index axis =
      resolve_axis(ctx, ctx.attr_int("axis", 0), static_cast<Index>(x.shape().size()));
  return {axis_view(x.shape(), axis), x.shape(), axis};
}

std::vector<OnnxValue> compress(const OpContext& ctx) {
  const OnnxValue& input = ctx.input(0);
  const OnnxValue& condition = ctx.input(1);
  if (condition.shape().size() != 1 || condition.tensor.dtype() != DType::Int64)
    ctx.fail(fmt::format("condition must be a 1-D bool tensor, got {} {}",
                         onnx_type_name(condition.type), shape_str(condition.shape())));
  // Named copies, not a structured binding: clang 14 cannot capture bindings in lambdas.
  OptionalAxis along = optional_axis(ctx, input);
  AxisView view = along.view;
  Shape out = along.out;
  Index axis = along.axis;
  const Index* c = condition.tensor.data<Index>();
  std::vector<Index> kept;
  for (Index s = 0; s < condition.tensor.numel(); ++s) {
    if (!c[s]) continue;
    if (s >= view.extent)
      ctx.fail(fmt::format("condition is true at {}, past the axis size {}", s, view.extent));
    kept.push_back(s);
  }
  out[static_cast<std::size_t>(axis)] = static_cast<Index>(kept.size());
  std::vector<Index> rows = index_list(ctx, {view.outer, static_cast<Index>(kept.size())});
  for (Index o = 0; o < view.outer; ++o)
    for (Index s : kept) rows.push_back(o * view.extent + s);
  return {select_rows(ctx, input, rows, view.inner, out)};
}

std::vector<OnnxValue> non_zero(const OpContext& ctx) {
  const OnnxValue& input = ctx.input(0);
  Shape shape = input.shape();
  if (shape.empty()) shape = {1};  // numpy treats a scalar as 1-D
  const Index rank = static_cast<Index>(shape.size());
  OnnxValue result;
  visit_storage(input.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = input.tensor.data<T>();
    const Index total = input.tensor.numel();
    const Index n = total - std::count(p, p + total, T{0});
    Tensor out = new_tensor(ctx, {rank, n}, OnnxType::Int64);
    Index* q = out.data<Index>();
    Index k = 0, j = 0;
    for_each_index(shape, [&](const std::vector<Index>& i) {
      if (p[k++] == T{0}) return;
      for (Index d = 0; d < rank; ++d) q[d * n + j] = i[d];
      ++j;
    });
    result = make_value(std::move(out), OnnxType::Int64);
  });
  return {result};
}

// ---- Sorting ----

std::vector<OnnxValue> top_k(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  Index k = 0;
  if (ctx.opset() >= 10) {
    const auto ks = int_values(ctx, ctx.input(1), "k");
    if (ks.size() != 1) ctx.fail("k must have exactly one element");
    k = ks[0];
  } else {
    if (!ctx.has_attr("k")) ctx.fail("attribute 'k' is required");
    k = ctx.attr_int("k", 0);
  }
  const Shape& xs = x.shape();
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", -1), static_cast<Index>(xs.size()));
  const bool largest = ctx.attr_int("largest", 1) != 0;
  const AxisView view = axis_view(xs, axis);
  if (k < 0 || k > view.extent)
    ctx.fail(fmt::format("k {} is out of range for an axis of size {}", k, view.extent));
  Shape out = xs;
  out[static_cast<std::size_t>(axis)] = k;
  std::vector<Index> positions = index_list(ctx, out);
  positions.resize(static_cast<std::size_t>(shape_numel(out)));
  std::vector<Index> offsets(positions.size());
  std::vector<Index> order(static_cast<std::size_t>(view.extent));
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    for (Index o = 0; o < view.outer; ++o)
      for (Index i = 0; i < view.inner; ++i) {
        const T* row = p + o * view.extent * view.inner + i;
        const auto before = [&](Index a, Index b) {  // ties: the lower index first
          const T va = row[a * view.inner], vb = row[b * view.inner];
          if (largest ? value_less(vb, va) : value_less(va, vb)) return true;
          if (largest ? value_less(va, vb) : value_less(vb, va)) return false;
          return a < b;
        };
        std::iota(order.begin(), order.end(), Index{0});
        std::partial_sort(order.begin(), order.begin() + k, order.end(), before);
        for (Index j = 0; j < k; ++j) {
          const Index at = (o * k + j) * view.inner + i;
          positions[at] = order[j];
          offsets[at] = (o * view.extent + order[j]) * view.inner + i;
        }
      }
  });
  return {select_rows(ctx, x, offsets, 1, out), int64_value(positions, out)};
}

std::vector<OnnxValue> unique(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const bool sorted = ctx.attr_int("sorted", 1) != 0;
  // Named copies, not a structured binding: clang 14 cannot capture bindings in lambdas.
  OptionalAxis along = optional_axis(ctx, x);
  AxisView view = along.view;
  Shape out = along.out;
  Index axis = along.axis;
  // Slice s is the elements (o, s, i); slices compare lexicographically.
  std::vector<Index> order(static_cast<std::size_t>(view.extent));
  std::iota(order.begin(), order.end(), Index{0});
  std::vector<Index> group_of(order.size());
  std::vector<Index> first, counts;  // per group, in sorted order
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    const auto compare = [&](Index a, Index b) {  // -1, 0 or 1
      for (Index o = 0; o < view.outer; ++o)
        for (Index i = 0; i < view.inner; ++i) {
          const T va = p[(o * view.extent + a) * view.inner + i];
          const T vb = p[(o * view.extent + b) * view.inner + i];
          if (value_less(va, vb)) return -1;
          if (value_less(vb, va)) return 1;
        }
      return 0;
    };
    std::stable_sort(order.begin(), order.end(),
                     [&](Index a, Index b) { return compare(a, b) < 0; });
    for (std::size_t j = 0; j < order.size(); ++j) {
      if (j == 0 || compare(order[j - 1], order[j]) != 0) {
        first.push_back(order[j]);
        counts.push_back(0);
      }
      group_of[order[j]] = static_cast<Index>(first.size()) - 1;
      ++counts.back();
    }
  });
  // Output position of each group: sorted order, or order of first occurrence.
  const std::size_t groups = first.size();
  std::vector<Index> rank_of(groups);
  std::iota(rank_of.begin(), rank_of.end(), Index{0});
  if (!sorted) {
    std::vector<Index> by_first(groups);
    std::iota(by_first.begin(), by_first.end(), Index{0});
    std::sort(by_first.begin(), by_first.end(),
              [&](Index a, Index b) { return first[a] < first[b]; });
    for (std::size_t r = 0; r < groups; ++r) rank_of[by_first[r]] = static_cast<Index>(r);
  }
  std::vector<Index> indices(groups), count_out(groups), inverse(order.size());
  for (std::size_t g = 0; g < groups; ++g) {
    indices[rank_of[g]] = first[g];
    count_out[rank_of[g]] = counts[g];
  }
  for (std::size_t s = 0; s < inverse.size(); ++s) inverse[s] = rank_of[group_of[s]];
  const Index u = static_cast<Index>(groups);
  out[static_cast<std::size_t>(axis)] = u;
  std::vector<Index> rows = index_list(ctx, {view.outer, u});
  for (Index o = 0; o < view.outer; ++o)
    for (Index s : indices) rows.push_back(o * view.extent + s);
  return {select_rows(ctx, x, rows, view.inner, out), int64_value(indices, {u}),
          int64_value(inverse, {view.extent}), int64_value(count_out, {u})};
}

// ---- Scans ----

std::vector<OnnxValue> cum_sum(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto axes = int_values(ctx, ctx.input(1), "axis");
  if (axes.size() != 1) ctx.fail("axis must have exactly one element");
  const Index axis = resolve_axis(ctx, axes[0], static_cast<Index>(x.shape().size()));
  const bool exclusive = ctx.attr_int("exclusive", 0) != 0;
  const bool reverse = ctx.attr_int("reverse", 0) != 0;
  const AxisView view = axis_view(x.shape(), axis);
  Tensor out = new_tensor(ctx, x.shape(), x.type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    T* q = out.data<T>();
    for (Index o = 0; o < view.outer; ++o)
      for (Index i = 0; i < view.inner; ++i) {
        T total{0};
        for (Index j = 0; j < view.extent; ++j) {
          const Index s = reverse ? view.extent - 1 - j : j;
          const Index at = (o * view.extent + s) * view.inner + i;
          const T value = p[at];
          if (!exclusive) combine(total, value, Reduction::Add);
          q[at] = total;
          if (exclusive) combine(total, value, Reduction::Add);
        }
      }
  });
  return {make_value(std::move(out), x.type)};
}

std::vector<OnnxValue> reverse_sequence(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const Shape& xs = x.shape();
  if (xs.size() < 2) ctx.fail(fmt::format("input must have rank >= 2, got {}", shape_str(xs)));
  const Index batch_axis = ctx.attr_int("batch_axis", 1);
  const Index time_axis = ctx.attr_int("time_axis", 0);
  if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
    ctx.fail(fmt::format("batch_axis {} and time_axis {} must be 0 and 1", batch_axis, time_axis));
  const Index* lens = index_data(ctx, ctx.input(1), "sequence_lens");
  if (ctx.input(1).shape() != Shape{xs[batch_axis]})
    ctx.fail(fmt::format("sequence_lens {} must have one length per batch entry ({})",
                         shape_str(ctx.input(1).shape()), xs[batch_axis]));
  for (Index b = 0; b < xs[batch_axis]; ++b)
    if (lens[b] < 0 || lens[b] > xs[time_axis])
      ctx.fail(fmt::format("sequence length {} is out of range 0..{}", lens[b], xs[time_axis]));
  const auto strides = contiguous_strides(xs);
  std::vector<Index> offsets = index_list(ctx, xs);
  for_each_index(xs, [&](const std::vector<Index>& i) {
    Index off = 0;
    for (std::size_t d = 0; d < xs.size(); ++d) off += strides[d] * i[d];
    const Index len = lens[i[batch_axis]], t = i[time_axis];
    if (t < len) off += strides[time_axis] * (len - 1 - 2 * t);
    offsets.push_back(off);
  });
  return {select_rows(ctx, x, offsets, 1, xs)};
}

// ---- Arg reductions ----

template <bool Max>
std::vector<OnnxValue> arg_extreme(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const Shape& xs = x.shape();
  const Index axis = resolve_axis(ctx, ctx.attr_int("axis", 0), static_cast<Index>(xs.size()));
  const bool keepdims = ctx.attr_int("keepdims", 1) != 0;
  const bool last = ctx.attr_int("select_last_index", 0) != 0;
  const AxisView view = axis_view(xs, axis);
  if (view.extent == 0) ctx.fail("cannot reduce an empty axis");
  Shape out = xs;
  if (keepdims)
    out[static_cast<std::size_t>(axis)] = 1;
  else
    out.erase(out.begin() + axis);
  std::vector<Index> result = index_list(ctx, out);
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    for (Index o = 0; o < view.outer; ++o)
      for (Index i = 0; i < view.inner; ++i) {
        const T* row = p + o * view.extent * view.inner + i;
        Index best = 0;
        for (Index j = 1; j < view.extent; ++j) {
          const T v = row[j * view.inner], b = row[best * view.inner];
          // The first NaN wins, as in numpy.
          const bool better =
              Max ? value_less(b, v) : !is_nan(b) && (is_nan(v) || value_less(v, b));
          const bool same = !value_less(v, b) && !value_less(b, v);
          if (better || (last && same)) best = j;
        }
        result.push_back(best);
      }
  });
  return {int64_value(result, out)};
}

std::vector<OnnxValue> hardmax(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const Shape& xs = x.shape();
  const Index rank = static_cast<Index>(xs.size());
  AxisView view;
  if (ctx.opset() < 13) {  // the input coerced to 2-D at axis
    const Index axis = resolve_axis(ctx, ctx.attr_int("axis", 1), rank);
    view = {extent_product(xs, 0, static_cast<std::size_t>(axis)),
            extent_product(xs, static_cast<std::size_t>(axis), xs.size()), 1};
  } else {
    view = axis_view(xs, resolve_axis(ctx, ctx.attr_int("axis", -1), rank));
  }
  Tensor out = new_tensor(ctx, xs, x.type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    T* q = out.data<T>();
    std::fill_n(q, out.numel(), T{0});
    for (Index o = 0; o < view.outer; ++o)
      for (Index i = 0; i < view.inner; ++i) {
        if (view.extent == 0) continue;
        const Index base = o * view.extent * view.inner + i;
        Index best = 0;
        for (Index j = 1; j < view.extent; ++j)
          if (value_less(p[base + best * view.inner], p[base + j * view.inner])) best = j;
        q[base + best * view.inner] = T{1};
      }
  });
  return {make_value(std::move(out), x.type)};
}

}  // namespace

void add_index_ops(OpTable& table) {
  table["Gather"] = {gather, 1};
  table["GatherElements"] = {gather_elements, 11};
  table["GatherND"] = {gather_nd, 11};
  table["ScatterElements"] = {scatter_elements, 11};
  table["Scatter"] = {scatter_elements, 9};
  table["ScatterND"] = {scatter_nd, 11};
  table["OneHot"] = {one_hot, 9};
  table["Compress"] = {compress, 9};
  table["NonZero"] = {non_zero, 9};
  table["TopK"] = {top_k, 1};
  table["CumSum"] = {cum_sum, 11};
  table["ReverseSequence"] = {reverse_sequence, 10};
  table["Unique"] = {unique, 11};
  table["ArgMax"] = {arg_extreme<true>, 1};
  table["ArgMin"] = {arg_extreme<false>, 1};
  table["Hardmax"] = {hardmax, 1};
}

}  // namespace lathe::onnx_detail
