// ONNX operators: shape (reshaping, joining, slicing, padding, rearranging). Float values go
// through lathe's differentiable ops (reshape, permute, slice, concat, index_select, gather)
// wherever they compute exactly the ONNX result, so gradients reach the model's weights.
#include <algorithm>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

namespace {

using Values = std::vector<OnnxValue>;

std::int64_t checked_mul(const OpContext& ctx, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) ctx.fail(fmt::format("dimension {} x {} overflows", a, b));
  return r;
}

std::int64_t checked_add(const OpContext& ctx, std::int64_t a, std::int64_t b) {
  std::int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) ctx.fail(fmt::format("dimension {} + {} overflows", a, b));
  return r;
}

std::int64_t product(const OpContext& ctx, const Shape& shape, std::size_t from, std::size_t to) {
  std::int64_t n = 1;
  for (std::size_t k = from; k < to; ++k) n = checked_mul(ctx, n, shape[k]);
  return n;
}

// Selects `index` along `axis` after checking the result's size.
Tensor select(const OpContext& ctx, const Tensor& t, std::int64_t axis,
              const std::vector<std::int64_t>& index, OnnxType type) {
  Shape shape = t.shape();
  shape[axis] = static_cast<std::int64_t>(index.size());
  ctx.check_size(shape, type);
  return index_select(t, axis, index_tensor(index));
}

// Axes resolved against `rank`, failing on duplicates.
std::vector<std::int64_t> unique_axes(const OpContext& ctx, const std::vector<std::int64_t>& axes,
                                      std::int64_t rank) {
  std::vector<std::int64_t> out;
  for (std::int64_t a : axes) {
    const std::int64_t r = resolve_axis(ctx, a, rank);
    if (std::find(out.begin(), out.end(), r) != out.end())
      ctx.fail(fmt::format("axis {} is given twice", a));
    out.push_back(r);
  }
  return out;
}

// Axes from the attribute before `input_since`, from input `index` from then on.
std::optional<std::vector<std::int64_t>> axes_arg(const OpContext& ctx, std::int64_t input_since,
                                                  std::size_t index) {
  if (ctx.opset() < input_since) {
    if (!ctx.has_attr("axes")) return std::nullopt;
    return ctx.attr_ints("axes");
  }
  if (!ctx.has_input(index)) return std::nullopt;
  return int_values(ctx, ctx.input(index), "axes");
}

Values identity_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  return {like(x, x.tensor)};
}

// Reshape: 0 copies the input's dim (unless allowzero), one -1 is inferred.
Values reshape_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto dims =
      ctx.opset() < 5 ? ctx.attr_ints("shape") : int_values(ctx, ctx.input(1), "shape");
  const bool allowzero = ctx.attr_int("allowzero", 0) != 0;
  Shape shape(dims.size());
  std::optional<std::size_t> inferred;
  std::int64_t known = 1;
  for (std::size_t k = 0; k < dims.size(); ++k) {
    std::int64_t d = dims[k];
    if (d == 0 && !allowzero) {
      if (k >= x.shape().size())
        ctx.fail(fmt::format("shape {} copies dim {} of input {}, which has no such dim",
                             shape_str(dims), k, shape_str(x.shape())));
      d = x.shape()[k];
    } else if (d == -1) {
      if (inferred) ctx.fail(fmt::format("shape {} has more than one -1", shape_str(dims)));
      inferred = k;
      continue;
    } else if (d < 0) {
      ctx.fail(fmt::format("shape {} has a negative dim", shape_str(dims)));
    }
    shape[k] = d;
    known = checked_mul(ctx, known, d);
  }
  const std::int64_t numel = x.tensor.numel();
  if (inferred) {
    if (known == 0 || numel % known != 0)
      ctx.fail(fmt::format("cannot reshape {} to {}", shape_str(x.shape()), shape_str(dims)));
    shape[*inferred] = numel / known;
  } else if (known != numel) {
    ctx.fail(fmt::format("cannot reshape {} to {}", shape_str(x.shape()), shape_str(dims)));
  }
  return {like(x, reshape(x.tensor, shape))};
}

Values flatten_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t rank = rank_of(x);
  std::int64_t axis = ctx.attr_int("axis", 1);
  if (axis < -rank || axis > rank)
    ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
  if (axis < 0) axis += rank;
  const auto split = static_cast<std::size_t>(axis);
  const Shape shape{product(ctx, x.shape(), 0, split),
                    product(ctx, x.shape(), split, x.shape().size())};
  return {like(x, reshape(x.tensor, shape))};
}

Values squeeze_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto axes = axes_arg(ctx, 13, 1);
  const std::int64_t rank = rank_of(x);
  std::vector<bool> drop(x.shape().size(), false);
  if (axes) {
    for (std::int64_t a : unique_axes(ctx, *axes, rank)) {
      if (x.shape()[a] != 1)
        ctx.fail(fmt::format("cannot squeeze axis {} of shape {}: its size is not 1", a,
                             shape_str(x.shape())));
      drop[a] = true;
    }
  } else {
    for (std::int64_t a = 0; a < rank; ++a) drop[a] = x.shape()[a] == 1;
  }
  Shape shape;
  for (std::int64_t a = 0; a < rank; ++a)
    if (!drop[a]) shape.push_back(x.shape()[a]);
  return {like(x, reshape(x.tensor, shape))};
}

Values unsqueeze_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto axes = axes_arg(ctx, 13, 1);
  if (!axes) ctx.fail("axes are required");
  const std::int64_t rank = rank_of(x) + static_cast<std::int64_t>(axes->size());
  std::vector<bool> inserted(rank, false);
  for (std::int64_t a : unique_axes(ctx, *axes, rank)) inserted[a] = true;
  Shape shape;
  std::size_t next = 0;
  for (std::int64_t a = 0; a < rank; ++a) shape.push_back(inserted[a] ? 1 : x.shape()[next++]);
  return {like(x, reshape(x.tensor, shape))};
}

Values transpose_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t rank = rank_of(x);
  std::vector<std::int64_t> reversed(rank);
  for (std::int64_t a = 0; a < rank; ++a) reversed[a] = rank - 1 - a;
  const auto perm = ctx.attr_ints("perm", reversed);
  if (static_cast<std::int64_t>(perm.size()) != rank)
    ctx.fail(fmt::format("perm has {} axes for rank {}", perm.size(), rank));
  return {like(x, permute(x.tensor, unique_axes(ctx, perm, rank)))};
}

Values concat_op(const OpContext& ctx) {
  if (ctx.input_count() == 0) ctx.fail("no inputs");
  const OnnxValue& first = ctx.input(0);
  const std::int64_t rank = rank_of(first);
  if (rank == 0) ctx.fail("cannot concatenate 0-D tensors");
  if (ctx.opset() >= 4 && !ctx.has_attr("axis")) ctx.fail("attribute 'axis' is required");
  const std::int64_t axis = resolve_axis(ctx, ctx.attr_int("axis", 1), rank);
  std::vector<Tensor> tensors;
  Shape shape = first.shape();
  shape[axis] = 0;
  for (std::size_t i = 0; i < ctx.input_count(); ++i) {
    const OnnxValue& v = ctx.input(i);
    bool compatible = v.type == first.type && rank_of(v) == rank;
    for (std::int64_t d = 0; compatible && d < rank; ++d)
      compatible = d == axis || v.shape()[d] == first.shape()[d];
    if (!compatible)
      ctx.fail(fmt::format("input {} ({} {}) does not match input 0 ({} {}) along axis {}", i,
                           onnx_type_name(v.type), shape_str(v.shape()), onnx_type_name(first.type),
                           shape_str(first.shape()), axis));
    shape[axis] = checked_add(ctx, shape[axis], v.shape()[axis]);
    tensors.push_back(v.tensor);
  }
  ctx.check_size(shape, first.type);
  return {like(first, concat(tensors, axis))};
}

// The sizes of Split's parts: given, num_outputs chunks (opset 18), or equal parts.
std::vector<std::int64_t> split_sizes(const OpContext& ctx, std::int64_t extent) {
  const auto outputs = static_cast<std::int64_t>(ctx.output_count());
  std::optional<std::vector<std::int64_t>> given;
  if (ctx.opset() >= 13 || (ctx.opset() < 2 && ctx.has_input(1))) {
    if (ctx.has_input(1)) given = int_values(ctx, ctx.input(1), "split");
  } else if (ctx.has_attr("split")) {
    given = ctx.attr_ints("split");
  }
  if (given) {
    if (static_cast<std::int64_t>(given->size()) != outputs)
      ctx.fail(fmt::format("split has {} sizes for {} outputs", given->size(), outputs));
    std::int64_t total = 0;
    for (std::int64_t s : *given) {
      if (s < 0) ctx.fail(fmt::format("split size {} is negative", s));
      total = checked_add(ctx, total, s);
    }
    if (total != extent)
      ctx.fail(fmt::format("split sizes sum to {}, the axis has {}", total, extent));
    return *given;
  }
  if (ctx.has_attr("num_outputs")) {
    const std::int64_t n = ctx.attr_int("num_outputs", 0);
    if (n != outputs) ctx.fail(fmt::format("num_outputs is {} for {} outputs", n, outputs));
    const std::int64_t chunk = extent / n + (extent % n != 0);
    std::vector<std::int64_t> sizes;
    for (std::int64_t k = 0, left = extent; k < n; ++k, left -= sizes.back())
      sizes.push_back(std::min(chunk, left));
    return sizes;
  }
  if (extent % outputs != 0)
    ctx.fail(fmt::format("an axis of {} does not split into {} equal parts", extent, outputs));
  return std::vector<std::int64_t>(outputs, extent / outputs);
}

Values split_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  if (ctx.output_count() == 0) ctx.fail("no outputs");
  const std::int64_t axis = resolve_axis(ctx, ctx.attr_int("axis", 0), rank_of(x));
  Values out;
  std::int64_t begin = 0;
  for (std::int64_t size : split_sizes(ctx, x.shape()[axis])) {
    out.push_back(like(x, slice(x.tensor, axis, begin, begin + size)));
    begin += size;
  }
  return out;
}

// One axis of Slice, with ONNX's clamping of start and end for the step's direction.
Tensor slice_axis(const OpContext& ctx, const Tensor& t, std::int64_t axis, std::int64_t start,
                  std::int64_t end, std::int64_t step, OnnxType type) {
  const std::int64_t dim = t.shape()[axis];
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<std::int64_t>(start, 0, dim);
    end = std::clamp<std::int64_t>(end, 0, dim);
    // A step past the axis takes one element at most; capping it keeps start + step in range.
    return slice(t, axis, start, end, std::min(step, std::max<std::int64_t>(dim, 1)));
  }
  if (dim == 0) return select(ctx, t, axis, {}, type);
  start = std::clamp<std::int64_t>(start, 0, dim - 1);
  end = std::clamp<std::int64_t>(end, -1, dim - 1);
  step = std::max(step, -std::max<std::int64_t>(dim, 1));
  std::vector<std::int64_t> index;
  for (std::int64_t i = start; i > end; i += step) index.push_back(i);
  return select(ctx, t, axis, index, type);
}

Values slice_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  std::vector<std::int64_t> starts, ends, steps;
  std::optional<std::vector<std::int64_t>> axes;
  if (ctx.opset() < 10) {
    if (!ctx.has_attr("starts") || !ctx.has_attr("ends"))
      ctx.fail("attributes 'starts' and 'ends' are required");
    starts = ctx.attr_ints("starts");
    ends = ctx.attr_ints("ends");
    if (ctx.has_attr("axes")) axes = ctx.attr_ints("axes");
  } else {
    starts = int_values(ctx, ctx.input(1), "starts");
    ends = int_values(ctx, ctx.input(2), "ends");
    if (ctx.has_input(3)) axes = int_values(ctx, ctx.input(3), "axes");
    if (ctx.has_input(4)) steps = int_values(ctx, ctx.input(4), "steps");
  }
  const std::size_t n = starts.size();
  if (!axes) {
    axes.emplace(n);
    for (std::size_t k = 0; k < n; ++k) (*axes)[k] = static_cast<std::int64_t>(k);
  }
  if (steps.empty()) steps.assign(n, 1);
  if (ends.size() != n || axes->size() != n || steps.size() != n)
    ctx.fail(fmt::format("starts, ends, axes and steps have {}, {}, {} and {} values", n,
                         ends.size(), axes->size(), steps.size()));
  const auto resolved = unique_axes(ctx, *axes, rank_of(x));
  Tensor y = x.tensor;
  for (std::size_t k = 0; k < n; ++k) {
    if (steps[k] == 0) ctx.fail("a step is 0");
    y = slice_axis(ctx, y, resolved[k], starts[k], ends[k], steps[k], x.type);
  }
  return {like(x, y)};
}

// Copies `x` broadcast to `shape` (already checked).
Tensor broadcast_copy(const OpContext& ctx, const OnnxValue& x, const Shape& shape) {
  Tensor out = new_tensor(ctx, shape, x.type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    T* q = out.data<T>();
    for_each_broadcast(shape, {broadcast_strides(x.shape(), shape)},
                       [&](std::int64_t k, const std::int64_t* offsets) { q[k] = p[offsets[0]]; });
  });
  return out;
}

Values expand_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto dims = int_values(ctx, ctx.input(1), "shape");
  for (std::int64_t d : dims)
    if (d < 0) ctx.fail(fmt::format("shape {} has a negative dim", shape_str(dims)));
  const Shape shape = broadcast_shapes(ctx, {x.shape(), dims});
  ctx.check_size(shape, x.type);
  // x * 1 is exact for every float (NaN, inf, -0 included), and keeps the gradient.
  if (x.tensor.dtype() != DType::Int64 && x.tensor.requires_grad())
    return {like(x, mul(x.tensor, Tensor::ones(shape, x.tensor.dtype())))};
  return {like(x, broadcast_copy(ctx, x, shape))};
}

Values tile_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const auto repeats = int_values(ctx, ctx.input(1), "repeats");
  const std::int64_t rank = rank_of(x);
  if (static_cast<std::int64_t>(repeats.size()) != rank)
    ctx.fail(fmt::format("{} repeats for rank {}", repeats.size(), rank));
  Tensor y = x.tensor;
  for (std::int64_t a = 0; a < rank; ++a) {
    const std::int64_t r = repeats[a];
    if (r < 0) ctx.fail(fmt::format("repeat {} is negative", r));
    if (r == 1) continue;
    const std::int64_t dim = y.shape()[a];
    Shape shape = y.shape();
    shape[a] = checked_mul(ctx, dim, r);
    ctx.check_size(shape, x.type);
    std::vector<std::int64_t> index(shape[a]);
    for (std::int64_t k = 0; k < shape[a]; ++k) index[k] = k % dim;
    y = select(ctx, y, a, index, x.type);
  }
  return {like(x, y)};
}

// Pad's constant as a 0-D tensor of x's storage.
Tensor pad_constant(const OpContext& ctx, const OnnxValue& x) {
  const DType dtype = x.tensor.dtype();
  if (ctx.opset() < 11) return Tensor::scalar(ctx.attr_float("value", 0.0), dtype);
  if (!ctx.has_input(2)) return Tensor::zeros({}, dtype);
  const OnnxValue& c = ctx.input(2);
  if (c.type != x.type)
    ctx.fail(fmt::format("constant_value is {}, the input {}", onnx_type_name(c.type),
                         onnx_type_name(x.type)));
  if (c.tensor.numel() != 1)
    ctx.fail(fmt::format("constant_value must hold one value, got shape {}", shape_str(c.shape())));
  return c.tensor;
}

// Where padded position i (from -before) reads along an axis of `dim` in edge/reflect mode.
std::int64_t pad_source(std::int64_t i, std::int64_t dim, bool reflect) {
  if (!reflect || dim == 1) return std::clamp<std::int64_t>(i, 0, dim - 1);
  const std::int64_t period = 2 * (dim - 1);
  const std::int64_t m = ((i % period) + period) % period;
  return m < dim ? m : period - m;
}

// Pads (or, for negative amounts, crops) axis `a` of `y` by `before` and `after`.
Tensor pad_axis(const OpContext& ctx, Tensor y, std::int64_t a, std::int64_t before,
                std::int64_t after, const std::string& mode, const Tensor& constant,
                OnnxType type) {
  std::int64_t dim = y.shape()[a];
  if (before < -dim || after < -dim || (before < 0 && after < 0 && -before > dim + after))
    ctx.fail(fmt::format("pads {} and {} crop more than the {} values of axis {}", before, after,
                         dim, a));
  if (before < 0 || after < 0) {
    const std::int64_t lo = before < 0 ? -before : 0, hi = after < 0 ? dim + after : dim;
    y = slice(y, a, lo, hi);
    dim = hi - lo;
  }
  before = std::max<std::int64_t>(before, 0);
  after = std::max<std::int64_t>(after, 0);
  if (before == 0 && after == 0) return y;
  Shape shape = y.shape();
  shape[a] = checked_add(ctx, checked_add(ctx, dim, before), after);
  ctx.check_size(shape, type);
  if (mode == "constant") {
    std::vector<Tensor> parts;
    for (std::int64_t n : {before, std::int64_t{-1}, after}) {
      if (n < 0) {
        parts.push_back(y);
        continue;
      }
      Shape block = y.shape();
      block[a] = n;
      if (n > 0) parts.push_back(filled(ctx, block, type, constant));
    }
    return concat(parts, a);
  }
  if (dim == 0) ctx.fail(fmt::format("cannot pad the empty axis {} in mode '{}'", a, mode));
  std::vector<std::int64_t> index(shape[a]);
  for (std::int64_t k = 0; k < shape[a]; ++k)
    index[k] = pad_source(k - before, dim, mode == "reflect");
  return select(ctx, y, a, index, type);
}

Values pad_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::string mode = ctx.attr_string("mode", "constant");
  if (mode == "wrap") ctx.unsupported("mode 'wrap' is not supported");
  if (mode != "constant" && mode != "reflect" && mode != "edge")
    ctx.fail(fmt::format("unknown mode '{}'", mode));
  const std::int64_t rank = rank_of(x);
  std::vector<std::int64_t> pads;
  if (ctx.opset() < 11)
    pads = ctx.attr_ints(ctx.opset() < 2 ? "paddings" : "pads");
  else
    pads = int_values(ctx, ctx.input(1), "pads");
  std::vector<std::int64_t> axes(rank);
  for (std::int64_t a = 0; a < rank; ++a) axes[a] = a;
  if (ctx.opset() >= 18 && ctx.has_input(3))
    axes = unique_axes(ctx, int_values(ctx, ctx.input(3), "axes"), rank);
  if (pads.size() != 2 * axes.size())
    ctx.fail(fmt::format("{} pads for {} axes", pads.size(), axes.size()));
  const Tensor constant = pad_constant(ctx, x);
  Tensor y = x.tensor;
  const std::size_t n = axes.size();
  for (std::size_t k = 0; k < n; ++k)
    y = pad_axis(ctx, y, axes[k], pads[k], pads[k + n], mode, constant, x.type);
  return {like(x, y)};
}

Values trilu_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t rank = rank_of(x);
  if (rank < 2)
    ctx.fail(fmt::format("input must have rank 2 or more, got {}", shape_str(x.shape())));
  const bool upper = ctx.attr_int("upper", 1) != 0;
  std::int64_t k = 0;
  if (ctx.has_input(1)) {
    const auto v = int_values(ctx, ctx.input(1), "k");
    if (v.size() != 1) ctx.fail("k must hold one value");
    k = v[0];
  }
  const std::int64_t rows = x.shape()[rank - 2], cols = x.shape()[rank - 1];
  const auto keep = [&](std::int64_t i, std::int64_t j) { return upper ? j - i >= k : j - i <= k; };
  if (x.tensor.dtype() != DType::Int64 && x.tensor.requires_grad()) {
    // Gathers from x with a zero column appended, so that the gradient flows.
    Shape zero_shape = x.shape();
    zero_shape[rank - 1] = 1;
    const Tensor padded = concat({x.tensor, Tensor::zeros(zero_shape, x.tensor.dtype())}, -1);
    Tensor index = Tensor::empty(x.shape(), DType::Int64);
    std::int64_t* p = index.data<std::int64_t>();
    for (std::int64_t e = 0, n = x.tensor.numel(); e < n; ++e) {
      const std::int64_t j = e % cols, i = e / cols % rows;
      p[e] = keep(i, j) ? j : cols;
    }
    return {like(x, gather(padded, -1, index))};
  }
  Tensor out = new_tensor(ctx, x.shape(), x.type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    T* q = out.data<T>();
    for (std::int64_t e = 0, n = x.tensor.numel(); e < n; ++e) {
      const std::int64_t j = e % cols, i = e / cols % rows;
      q[e] = keep(i, j) ? p[e] : T(0);
    }
  });
  return {like(x, out)};
}

std::int64_t blocksize(const OpContext& ctx, const OnnxValue& x) {
  if (rank_of(x) != 4) ctx.fail(fmt::format("input must be 4-D, got {}", shape_str(x.shape())));
  const std::int64_t b = ctx.attr_int("blocksize", 0);
  if (b < 1) ctx.fail(fmt::format("blocksize must be positive, got {}", b));
  return b;
}

Values depth_to_space_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t b = blocksize(ctx, x);
  const std::string mode = ctx.attr_string("mode", "DCR");
  if (mode != "DCR" && mode != "CRD") ctx.fail(fmt::format("unknown mode '{}'", mode));
  const Shape& s = x.shape();
  const std::int64_t bb = checked_mul(ctx, b, b);
  if (s[1] % bb != 0)
    ctx.fail(fmt::format("channels {} are not a multiple of blocksize^2 {}", s[1], bb));
  const std::int64_t c = s[1] / bb;
  const Shape out{s[0], c, checked_mul(ctx, s[2], b), checked_mul(ctx, s[3], b)};
  Tensor y;
  if (mode == "DCR")
    y = permute(reshape(x.tensor, {s[0], b, b, c, s[2], s[3]}), {0, 3, 4, 1, 5, 2});
  else
    y = permute(reshape(x.tensor, {s[0], c, b, b, s[2], s[3]}), {0, 1, 4, 2, 5, 3});
  return {like(x, reshape(y, out))};
}

Values space_to_depth_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t b = blocksize(ctx, x);
  const Shape& s = x.shape();
  if (s[2] % b != 0 || s[3] % b != 0)
    ctx.fail(
        fmt::format("height and width of {} are not multiples of blocksize {}", shape_str(s), b));
  const std::int64_t h = s[2] / b, w = s[3] / b;
  const Shape out{s[0], checked_mul(ctx, s[1], checked_mul(ctx, b, b)), h, w};
  const Tensor y = permute(reshape(x.tensor, {s[0], s[1], h, b, w, b}), {0, 3, 5, 1, 2, 4});
  return {like(x, reshape(y, out))};
}

}  // namespace

void add_shape_ops(OpTable& table) {
  table["Identity"] = {identity_op, 1};
  table["Reshape"] = {reshape_op, 1};
  table["Flatten"] = {flatten_op, 1};
  table["Squeeze"] = {squeeze_op, 1};
  table["Unsqueeze"] = {unsqueeze_op, 1};
  table["Transpose"] = {transpose_op, 1};
  table["Concat"] = {concat_op, 1};
  table["Split"] = {split_op, 1};
  table["Slice"] = {slice_op, 1};
  table["Expand"] = {expand_op, 8};
  table["Tile"] = {tile_op, 6};
  table["Pad"] = {pad_op, 1};
  table["Trilu"] = {trilu_op, 14};
  table["DepthToSpace"] = {depth_to_space_op, 1};
  table["SpaceToDepth"] = {space_to_depth_op, 1};
}

}  // namespace lathe::onnx_detail
