// ONNX operators: broadcasting binary arithmetic, comparisons, logic and bit operations, the
// variadic Sum/Mean/Max/Min, Where, Clip and Cast. Floating Add/Sub/Mul/Div/Pow/Sum/Mean/Clip run
// on lathe's ops, so gradients reach the model's weights; the rest are generic loops.
#include <cmath>
#include <functional>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {
namespace {

void require_same_type(const OpContext& ctx, const OnnxValue& a, const OnnxValue& b) {
  if (a.type != b.type)
    ctx.fail(fmt::format("inputs have different types, {} and {}", onnx_type_name(a.type),
                         onnx_type_name(b.type)));
}

// out[k] = f(a[k], b[k]) under broadcasting, both read as their storage type T and the result
// stored as the output's storage type.
template <class F>
OnnxValue broadcast_map(const OpContext& ctx, const OnnxValue& a, const OnnxValue& b,
                        OnnxType out_type, F f) {
  const Shape shape = broadcast_shapes(ctx, {a.shape(), b.shape()});
  Tensor out = new_tensor(ctx, shape, out_type);
  const std::vector<std::vector<std::int64_t>> strides = {broadcast_strides(a.shape(), shape),
                                                          broadcast_strides(b.shape(), shape)};
  visit_storage(a.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* pa = a.tensor.data<T>();
    const T* pb = b.tensor.data<T>();
    visit_storage(out, [&](auto out_tag) {
      using R = decltype(out_tag);
      R* q = out.data<R>();
      for_each_broadcast(shape, strides, [&](std::int64_t k, const std::int64_t* off) {
        q[k] = static_cast<R>(f(pa[off[0]], pb[off[1]]));
      });
    });
  });
  return make_value(std::move(out), out_type);
}

bool lathe_float(const OnnxValue& v) {
  return is_float_type(v.type);
}

// Add, Sub, Mul, Div: lathe's op for floating types, a loop for integers.
template <class LatheOp, class F>
Kernel arithmetic(LatheOp lathe_op, F f) {
  return [lathe_op, f](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& a = ctx.input(0);
    const OnnxValue& b = ctx.input(1);
    require_same_type(ctx, a, b);
    if (lathe_float(a)) {
      broadcast_shapes(ctx, {a.shape(), b.shape()});
      return {make_value(lathe_op(a.tensor, b.tensor), a.type)};
    }
    return {broadcast_map(ctx, a, b, a.type, f)};
  };
}

std::int64_t checked_divisor(const OpContext& ctx, std::int64_t d) {
  if (d == 0) ctx.fail("integer division by zero");
  return d;
}

Kernel division() {
  return [](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& a = ctx.input(0);
    const OnnxValue& b = ctx.input(1);
    require_same_type(ctx, a, b);
    if (lathe_float(a)) {
      broadcast_shapes(ctx, {a.shape(), b.shape()});
      return {make_value(div(a.tensor, b.tensor), a.type)};
    }
    return {broadcast_map(ctx, a, b, a.type, [&](auto x, auto y) {
      if constexpr (std::is_integral_v<decltype(x)>) {
        checked_divisor(ctx, y);
        if (x == INT64_MIN && y == -1) return x;  // wraps, as in two's complement hardware
        return x / y;
      } else {
        return x / y;
      }
    })};
  };
}

std::vector<OnnxValue> pow_kernel(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  if (lathe_float(a) && a.tensor.dtype() == b.tensor.dtype()) {
    broadcast_shapes(ctx, {a.shape(), b.shape()});
    return {make_value(pow(a.tensor, b.tensor), a.type)};
  }
  // Mixed types (opset 12+): computed in double, the result has the base's type.
  const OnnxValue da = cast_value(a, OnnxType::Double), db = cast_value(b, OnnxType::Double);
  return {cast_value(broadcast_map(ctx, da, db, OnnxType::Double,
                                   [](double x, double y) { return std::pow(x, y); }),
                     a.type)};
}

std::vector<OnnxValue> mod_kernel(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  require_same_type(ctx, a, b);
  const bool fmod = ctx.attr_int("fmod", 0) != 0;
  if (lathe_float(a) && !fmod) ctx.fail("fmod must be 1 for floating inputs");
  return {broadcast_map(ctx, a, b, a.type, [&](auto x, auto y) {
    using T = decltype(x);
    if constexpr (std::is_integral_v<T>) {
      checked_divisor(ctx, y);
      if (y == -1) return T{0};
      const T r = x % y;
      return (!fmod && r != 0 && ((r < 0) != (y < 0))) ? static_cast<T>(r + y) : r;
    } else {
      return static_cast<T>(std::fmod(x, y));
    }
  })};
}

template <class F>
Kernel comparison(F f) {
  return [f](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& a = ctx.input(0);
    const OnnxValue& b = ctx.input(1);
    require_same_type(ctx, a, b);
    return {broadcast_map(ctx, a, b, OnnxType::Bool, f)};
  };
}

template <class F>
Kernel logical(F f) {
  return [f](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& a = ctx.input(0);
    const OnnxValue& b = ctx.input(1);
    if (a.type != OnnxType::Bool || b.type != OnnxType::Bool) ctx.fail("inputs must be bool");
    return {broadcast_map(ctx, a, b, OnnxType::Bool, f)};
  };
}

std::vector<OnnxValue> not_kernel(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  if (a.type != OnnxType::Bool) ctx.fail("input must be bool");
  Tensor out = a.tensor.clone();
  std::int64_t* p = out.data<std::int64_t>();
  for (std::int64_t k = 0; k < out.numel(); ++k) p[k] = !p[k];
  return {make_value(std::move(out), OnnxType::Bool)};
}

std::vector<OnnxValue> bit_shift_kernel(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  require_same_type(ctx, a, b);
  if (is_signed_type(a.type) || !is_integer_type(a.type)) ctx.fail("inputs must be unsigned");
  const std::string direction = ctx.attr_string("direction", "");
  if (direction != "LEFT" && direction != "RIGHT")
    ctx.fail(fmt::format("direction must be LEFT or RIGHT, got '{}'", direction));
  const bool left = direction == "LEFT";
  return {broadcast_map(ctx, a, b, a.type, [left](auto x, auto y) {
    using U = std::uint64_t;
    const U ux = static_cast<U>(x), uy = static_cast<U>(y);
    if (uy >= 64) return std::int64_t{0};
    return static_cast<std::int64_t>(left ? ux << uy : ux >> uy);
  })};
}

// Sum, Mean, Max, Min over any number of broadcasting inputs.
template <class LatheOp, class F>
Kernel variadic(LatheOp lathe_op, F f, bool mean) {
  return [lathe_op, f, mean](const OpContext& ctx) -> std::vector<OnnxValue> {
    if (ctx.input_count() == 0) ctx.fail("needs at least one input");
    OnnxValue acc = ctx.input(0);
    const bool use_lathe = lathe_float(acc) && lathe_op != nullptr;
    for (std::size_t i = 1; i < ctx.input_count(); ++i) {
      const OnnxValue& next = ctx.input(i);
      require_same_type(ctx, acc, next);
      if (use_lathe) {
        broadcast_shapes(ctx, {acc.shape(), next.shape()});
        acc = make_value(lathe_op(acc.tensor, next.tensor), acc.type);
      } else {
        acc = broadcast_map(ctx, acc, next, acc.type, f);
      }
    }
    if (mean) {
      if (!lathe_float(acc)) ctx.fail("Mean needs floating inputs");
      acc = make_value(acc.tensor / static_cast<double>(ctx.input_count()), acc.type);
    }
    if (ctx.input_count() == 1) acc = make_value(acc.tensor.clone(), acc.type);
    return {acc};
  };
}

std::vector<OnnxValue> where_kernel(const OpContext& ctx) {
  const OnnxValue& c = ctx.input(0);
  const OnnxValue& x = ctx.input(1);
  const OnnxValue& y = ctx.input(2);
  if (c.type != OnnxType::Bool) ctx.fail("condition must be bool");
  require_same_type(ctx, x, y);
  const Shape shape = broadcast_shapes(ctx, {c.shape(), x.shape(), y.shape()});
  Tensor out = new_tensor(ctx, shape, x.type);
  const std::vector<std::vector<std::int64_t>> strides = {broadcast_strides(c.shape(), shape),
                                                          broadcast_strides(x.shape(), shape),
                                                          broadcast_strides(y.shape(), shape)};
  const std::int64_t* pc = c.tensor.data<std::int64_t>();
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* px = x.tensor.data<T>();
    const T* py = y.tensor.data<T>();
    T* q = out.data<T>();
    for_each_broadcast(shape, strides, [&](std::int64_t k, const std::int64_t* off) {
      q[k] = pc[off[0]] ? px[off[1]] : py[off[2]];
    });
  });
  return {make_value(std::move(out), x.type)};
}

std::optional<double> clip_bound(const OpContext& ctx, std::size_t input, const char* attribute) {
  if (ctx.opset() < 11) {
    if (!ctx.has_attr(attribute)) return std::nullopt;
    return ctx.attr_float(attribute, 0);
  }
  if (!ctx.has_input(input)) return std::nullopt;
  const OnnxValue& v = ctx.input(input);
  if (v.tensor.numel() != 1) ctx.fail(fmt::format("{} must be a scalar", attribute));
  return v.tensor.to_vector()[0];
}

std::vector<OnnxValue> clip_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const std::optional<double> lo = clip_bound(ctx, 1, "min"), hi = clip_bound(ctx, 2, "max");
  if (lathe_float(x)) {
    if (lo && hi && *lo > *hi) {  // ONNX: every element becomes max
      Tensor out = Tensor::full(x.shape(), *hi, x.tensor.dtype());
      return {make_value(std::move(out), x.type)};
    }
    if (!lo && !hi) return {make_value(x.tensor.clone(), x.type)};
    return {make_value(clamp(x.tensor, lo, hi), x.type)};
  }
  Tensor out = x.tensor.clone();
  std::int64_t* p = out.data<std::int64_t>();
  for (std::int64_t k = 0; k < out.numel(); ++k) {
    if (lo) p[k] = std::max<std::int64_t>(p[k], static_cast<std::int64_t>(*lo));
    if (hi) p[k] = std::min<std::int64_t>(p[k], static_cast<std::int64_t>(*hi));
  }
  return {make_value(std::move(out), x.type)};
}

OnnxType target_type(const OpContext& ctx, std::int64_t to) {
  if (to < 1 || to > static_cast<std::int64_t>(OnnxType::Bfloat16))
    ctx.fail(fmt::format("unknown target type {}", to));
  const auto type = static_cast<OnnxType>(to);
  try {
    onnx_storage_dtype(type);
  } catch (const OnnxUnsupported&) {
    ctx.unsupported(fmt::format("cast to {}", onnx_type_name(type)));
  }
  return type;
}

std::vector<OnnxValue> cast_kernel(const OpContext& ctx) {
  const Attribute* to = ctx.attr("to");
  if (!to) ctx.fail("attribute 'to' is required");
  if (to->kind == Attribute::Kind::String)  // opset 1 spelled the type as a string
    ctx.unsupported("the type names of opset 1's Cast");
  const OnnxType type = target_type(ctx, ctx.attr_int("to", 0));
  const OnnxValue& x = ctx.input(0);
  if (x.type == type) return {make_value(x.tensor.clone(), type)};
  return {cast_value(x, type)};
}

std::vector<OnnxValue> cast_like_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const OnnxType type = ctx.input(1).type;
  if (x.type == type) return {make_value(x.tensor.clone(), type)};
  return {cast_value(x, type)};
}

// Integer arithmetic wraps (two's complement), as ONNX Runtime's does, instead of overflowing.
template <class Op>
auto wrapping(Op op) {
  return [op](auto x, auto y) {
    using T = decltype(x);
    if constexpr (std::is_integral_v<T>) {
      using U = std::make_unsigned_t<T>;
      return static_cast<T>(op(static_cast<U>(x), static_cast<U>(y)));
    } else {
      return static_cast<T>(op(x, y));
    }
  };
}

}  // namespace

void add_elementwise_ops(OpTable& table) {
  const auto plain = [](auto op) { return wrapping(op); };
  table["Add"] = {
      arithmetic([](const Tensor& a, const Tensor& b) { return add(a, b); }, plain(std::plus<>())),
      1};
  table["Sub"] = {
      arithmetic([](const Tensor& a, const Tensor& b) { return sub(a, b); }, plain(std::minus<>())),
      1};
  table["Mul"] = {arithmetic([](const Tensor& a, const Tensor& b) { return mul(a, b); },
                             plain(std::multiplies<>())),
                  1};
  table["Div"] = {division(), 1};
  table["Pow"] = {pow_kernel, 1};
  table["Mod"] = {mod_kernel, 10};
  table["Equal"] = {comparison([](auto x, auto y) { return x == y; }), 1};
  table["Less"] = {comparison([](auto x, auto y) { return x < y; }), 1};
  table["LessOrEqual"] = {comparison([](auto x, auto y) { return x <= y; }), 12};
  table["Greater"] = {comparison([](auto x, auto y) { return x > y; }), 1};
  table["GreaterOrEqual"] = {comparison([](auto x, auto y) { return x >= y; }), 12};
  table["And"] = {logical([](auto x, auto y) { return x && y; }), 1};
  table["Or"] = {logical([](auto x, auto y) { return x || y; }), 1};
  table["Xor"] = {logical([](auto x, auto y) { return (x != 0) != (y != 0); }), 1};
  table["Not"] = {not_kernel, 1};
  table["BitShift"] = {bit_shift_kernel, 11};
  using LatheBinary = Tensor (*)(const Tensor&, const Tensor&);
  const LatheBinary lathe_add = [](const Tensor& a, const Tensor& b) { return add(a, b); };
  const auto sum = wrapping(std::plus<>());
  table["Sum"] = {variadic(lathe_add, sum, false), 1};
  table["Mean"] = {variadic(lathe_add, sum, true), 1};
  table["Max"] = {variadic(
                      LatheBinary{nullptr},
                      [](auto x, auto y) {
                        return (x != x || y != y) ? x + y : std::max(x, y);  // NaN propagates
                      },
                      false),
                  1};
  table["Min"] = {
      variadic(
          LatheBinary{nullptr},
          [](auto x, auto y) { return (x != x || y != y) ? x + y : std::min(x, y); }, false),
      1};
  table["Where"] = {where_kernel, 9};
  table["Clip"] = {clip_kernel, 6};
  table["Cast"] = {cast_kernel, 1};
  table["CastLike"] = {cast_like_kernel, 15};
}

}  // namespace lathe::onnx_detail
