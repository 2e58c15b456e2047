// ONNX operators that make values rather than reshape them: Shape, Size, Constant,
// ConstantOfShape, Range, EyeLike, and Dropout at inference (the identity and an all-true mask).
#include <algorithm>
#include <cmath>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

namespace {

using Values = std::vector<OnnxValue>;

Values shape_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::int64_t rank = rank_of(x);
  const auto bound = [rank](std::int64_t i) {
    return std::clamp<std::int64_t>(i < 0 ? i + rank : i, 0, rank);
  };
  const std::int64_t start = bound(ctx.attr_int("start", 0));
  const std::int64_t end = std::max(start, bound(ctx.attr_int("end", rank)));
  const std::vector<std::int64_t> dims(x.shape().begin() + start, x.shape().begin() + end);
  return {make_value(index_tensor(dims), OnnxType::Int64)};
}

Values size_op(const OpContext& ctx) {
  return {make_value(Tensor::from_indices({ctx.input(0).tensor.numel()}, {}), OnnxType::Int64)};
}

Values constant_op(const OpContext& ctx) {
  if (const Attribute* a = ctx.attr("value")) {
    if (a->kind != Attribute::Kind::Tensor) ctx.fail("attribute 'value' must be a tensor");
    return {make_value(a->t.tensor, a->t.type)};
  }
  if (ctx.has_attr("value_float"))
    return {make_value(Tensor::scalar(ctx.attr_float("value_float", 0)), OnnxType::Float)};
  if (ctx.has_attr("value_floats")) {
    const auto v = ctx.attr_floats("value_floats");
    return {
        make_value(Tensor::from_vector(v, {static_cast<std::int64_t>(v.size())}), OnnxType::Float)};
  }
  if (ctx.has_attr("value_int"))
    return {make_value(Tensor::from_indices({ctx.attr_int("value_int", 0)}, {}), OnnxType::Int64)};
  if (ctx.has_attr("value_ints"))
    return {make_value(index_tensor(ctx.attr_ints("value_ints")), OnnxType::Int64)};
  for (const char* name : {"sparse_value", "value_string", "value_strings"})
    if (ctx.has_attr(name)) ctx.unsupported(fmt::format("attribute '{}' is not supported", name));
  ctx.fail("no value attribute");
}

Values constant_of_shape_op(const OpContext& ctx) {
  const auto dims = int_values(ctx, ctx.input(0), "shape");
  for (std::int64_t d : dims)
    if (d < 0) ctx.fail(fmt::format("shape {} has a negative dim", shape_str(dims)));
  OnnxValue value{Tensor::zeros({1}), OnnxType::Float};
  if (const Attribute* a = ctx.attr("value")) {
    if (a->kind != Attribute::Kind::Tensor) ctx.fail("attribute 'value' must be a tensor");
    if (a->t.tensor.numel() != 1)
      ctx.fail(fmt::format("value must hold one element, got shape {}", shape_str(a->t.shape())));
    value = a->t;
  }
  return {make_value(filled(ctx, dims, value.type, value.tensor), value.type)};
}

// Range for integer types: exact, without overflow.
Tensor int_range(const OpContext& ctx, std::int64_t start, std::int64_t limit, std::int64_t delta,
                 OnnxType type) {
  const __int128 diff = static_cast<__int128>(limit) - start;
  __int128 n = diff / delta;
  if (n * delta != diff) ++n;  // ceil: diff and delta of the same sign
  n = std::max<__int128>(n, 0);
  if (n > (__int128{1} << 62))
    ctx.fail(fmt::format("range({}, {}, {}) is too long", start, limit, delta));
  const Shape shape{static_cast<std::int64_t>(n)};
  Tensor out = new_tensor(ctx, shape, type);
  std::int64_t* q = out.data<std::int64_t>();
  for (std::int64_t k = 0; k < shape[0]; ++k)
    q[k] = static_cast<std::int64_t>(start + static_cast<__int128>(k) * delta);
  return out;
}

Values range_op(const OpContext& ctx) {
  const OnnxValue& s = ctx.input(0);
  const OnnxValue& l = ctx.input(1);
  const OnnxValue& d = ctx.input(2);
  if (s.type != l.type || s.type != d.type)
    ctx.fail("start, limit and delta must have the same type");
  if (s.tensor.dtype() == DType::Int64) {
    for (const OnnxValue* v : {&s, &l, &d})
      if (v->tensor.numel() != 1) ctx.fail("start, limit and delta must be scalars");
    const std::int64_t delta = d.tensor.data<std::int64_t>()[0];
    if (delta == 0) ctx.fail("delta is 0");
    return {make_value(int_range(ctx, s.tensor.data<std::int64_t>()[0],
                                 l.tensor.data<std::int64_t>()[0], delta, s.type),
                       s.type)};
  }
  const double start = scalar_double(ctx, s, "start"), limit = scalar_double(ctx, l, "limit"),
               delta = scalar_double(ctx, d, "delta");
  if (delta == 0) ctx.fail("delta is 0");
  const double n = std::max(std::ceil((limit - start) / delta), 0.0);
  if (!std::isfinite(n) || n > 1e18)
    ctx.fail(fmt::format("range({}, {}, {}) has no finite length", start, limit, delta));
  const Shape shape{static_cast<std::int64_t>(n)};
  Tensor out = new_tensor(ctx, shape, s.type);
  visit_storage(out, [&](auto tag) {
    using T = decltype(tag);
    T* q = out.data<T>();
    for (std::int64_t k = 0; k < shape[0]; ++k) q[k] = static_cast<T>(start + k * delta);
  });
  return {make_value(out, s.type)};
}

Values eye_like_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  if (rank_of(x) != 2) ctx.fail(fmt::format("input must be 2-D, got {}", shape_str(x.shape())));
  const auto type =
      ctx.has_attr("dtype") ? static_cast<OnnxType>(ctx.attr_int("dtype", 0)) : x.type;
  if (!is_float_type(type) && !is_integer_type(type) && type != OnnxType::Bool)
    ctx.unsupported(fmt::format("dtype {} is not supported", static_cast<int>(type)));
  const std::int64_t rows = x.shape()[0], cols = x.shape()[1];
  const std::int64_t k = ctx.attr_int("k", 0);
  Tensor out = new_tensor(ctx, x.shape(), type);
  out.fill_(0);
  if (k < cols && k > -rows) {
    visit_storage(out, [&](auto tag) {
      using T = decltype(tag);
      T* q = out.data<T>();
      for (std::int64_t i = std::max<std::int64_t>(0, -k); i < rows && i + k < cols; ++i)
        q[i * cols + i + k] = T(1);
    });
  }
  return {make_value(out, type)};
}

// Dropout at inference: the identity, with a mask of all true. Opset 1-6's is_test is ignored
// (as runtimes do); a training_mode input (opset 12+) set with a non-zero ratio is refused.
Values dropout_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  if (ctx.opset() >= 12 && ctx.has_input(2) &&
      scalar_double(ctx, ctx.input(2), "training_mode") != 0) {
    const double ratio = ctx.has_input(1) ? scalar_double(ctx, ctx.input(1), "ratio") : 0.5;
    if (ratio != 0) ctx.unsupported("training mode (random dropout) is not supported");
  }
  Values out{like(x, x.tensor)};
  if (ctx.output_count() > 1) {
    const OnnxType mask = ctx.opset() >= 10 ? OnnxType::Bool : x.type;
    Tensor ones = new_tensor(ctx, x.shape(), mask);
    ones.fill_(1);
    out.push_back(make_value(ones, mask));
  }
  return out;
}

}  // namespace

void add_constant_ops(OpTable& table) {
  table["Shape"] = {shape_op, 1};
  table["Size"] = {size_op, 1};
  table["Constant"] = {constant_op, 1};
  table["ConstantOfShape"] = {constant_of_shape_op, 9};
  table["Range"] = {range_op, 11};
  table["EyeLike"] = {eye_like_op, 9};
  table["Dropout"] = {dropout_op, 1};
}

}  // namespace lathe::onnx_detail
