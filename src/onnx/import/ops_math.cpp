// ONNX operators: unary math and activations. Those lathe has as differentiable ops (Abs, Neg,
// Exp, Log, Sqrt, Reciprocal, Relu, LeakyRelu, Sigmoid, Tanh) run on them for floating inputs;
// the rest are element loops computed in double.
#include <cmath>
#include <functional>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {
namespace {

// Applies f (double -> double) to every element of a floating input.
template <class F>
OnnxValue float_map(const OpContext& ctx, const OnnxValue& x, F f) {
  if (!is_float_type(x.type)) ctx.unsupported(fmt::format("input type {}", onnx_type_name(x.type)));
  Tensor out = Tensor::empty(x.shape(), x.tensor.dtype());
  visit_storage(x.tensor, [&](auto tag) {
    using T = decltype(tag);
    const T* p = x.tensor.data<T>();
    T* q = out.data<T>();
    for (std::int64_t k = 0; k < out.numel(); ++k)
      q[k] = static_cast<T>(f(static_cast<double>(p[k])));
  });
  return make_value(std::move(out), x.type);
}

// A unary op on floats: lathe's op when given (autograd), otherwise f in double.
Kernel unary(std::function<Tensor(const Tensor&)> lathe_op, std::function<double(double)> f) {
  return [lathe_op, f](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& x = ctx.input(0);
    if (lathe_op && is_float_type(x.type)) return {make_value(lathe_op(x.tensor), x.type)};
    return {float_map(ctx, x, f)};
  };
}

// A unary op that integers have too (Abs, Neg, Sign, Relu): the integer version is `g`.
Kernel unary_with_integers(std::function<Tensor(const Tensor&)> lathe_op,
                           std::function<double(double)> f,
                           std::function<std::int64_t(std::int64_t)> g) {
  const Kernel floating = unary(std::move(lathe_op), std::move(f));
  return [floating, g](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& x = ctx.input(0);
    if (is_float_type(x.type)) return floating(ctx);
    Tensor out = x.tensor.clone();
    std::int64_t* p = out.data<std::int64_t>();
    for (std::int64_t k = 0; k < out.numel(); ++k) p[k] = g(p[k]);
    return {make_value(std::move(out), x.type)};
  };
}

// An activation with float attributes read when the node runs.
template <class F>
Kernel activation(F make) {
  return [make](const OpContext& ctx) -> std::vector<OnnxValue> {
    return {float_map(ctx, ctx.input(0), make(ctx))};
  };
}

double round_half_even(double x) {
  return std::nearbyint(x);
}  // default rounding mode

std::vector<OnnxValue> is_nan_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  const OnnxValue as_float = float_map(ctx, x, [](double v) { return std::isnan(v) ? 1.0 : 0.0; });
  return {cast_value(as_float, OnnxType::Bool)};
}

std::vector<OnnxValue> is_inf_kernel(const OpContext& ctx) {
  const bool positive = ctx.attr_int("detect_positive", 1) != 0;
  const bool negative = ctx.attr_int("detect_negative", 1) != 0;
  const OnnxValue flags = float_map(ctx, ctx.input(0), [&](double v) {
    return std::isinf(v) && ((v > 0 && positive) || (v < 0 && negative)) ? 1.0 : 0.0;
  });
  return {cast_value(flags, OnnxType::Bool)};
}

std::vector<OnnxValue> prelu_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  OnnxValue slope = ctx.input(1);
  // Before opset 7, a 1-D slope of the channel count applied along axis 1.
  if (ctx.opset() < 7 && slope.shape().size() == 1 && x.shape().size() > 2 &&
      slope.shape()[0] == x.shape()[1] && slope.shape()[0] != x.shape().back()) {
    Shape per_channel(x.shape().size() - 1, 1);
    per_channel[0] = slope.shape()[0];
    slope.tensor = reshape(slope.tensor, per_channel);
  }
  if (x.type != slope.type) ctx.fail("X and slope must have the same type");
  if (is_float_type(x.type)) {
    // relu(x) - relu(-x) * slope keeps autograd to the slope, which is a trained weight.
    broadcast_shapes(ctx, {x.shape(), slope.shape()});
    return {make_value(sub(relu(x.tensor), mul(relu(neg(x.tensor)), slope.tensor)), x.type)};
  }
  const Shape shape = broadcast_shapes(ctx, {x.shape(), slope.shape()});
  Tensor out = new_tensor(ctx, shape, x.type);
  const std::int64_t* px = x.tensor.data<std::int64_t>();
  const std::int64_t* ps = slope.tensor.data<std::int64_t>();
  std::int64_t* q = out.data<std::int64_t>();
  for_each_broadcast(
      shape, {broadcast_strides(x.shape(), shape), broadcast_strides(slope.shape(), shape)},
      [&](std::int64_t k, const std::int64_t* off) {
        const std::int64_t v = px[off[0]];
        q[k] = v < 0 ? static_cast<std::int64_t>(static_cast<std::uint64_t>(v) *
                                                 static_cast<std::uint64_t>(ps[off[1]]))
                     : v;
      });
  return {make_value(std::move(out), x.type)};
}

// -v in two's complement (INT64_MIN stays itself), without signed overflow.
std::int64_t wrapping_negate(std::int64_t v) {
  return static_cast<std::int64_t>(0ull - static_cast<std::uint64_t>(v));
}

double sign(double v) {
  return v > 0 ? 1.0 : (v < 0 ? -1.0 : v);
}

}  // namespace

void add_math_ops(OpTable& table) {
  using F = std::function<Tensor(const Tensor&)>;
  const F none;
  table["Abs"] = {unary_with_integers(
                      [](const Tensor& x) { return abs(x); }, [](double v) { return std::abs(v); },
                      [](std::int64_t v) { return v < 0 ? wrapping_negate(v) : v; }),
                  1};
  table["Neg"] = {unary_with_integers([](const Tensor& x) { return neg(x); },
                                      [](double v) { return -v; }, wrapping_negate),
                  1};
  table["Sign"] = {
      unary_with_integers(none, sign, [](std::int64_t v) { return std::int64_t{v > 0} - (v < 0); }),
      9};
  table["Relu"] = {unary_with_integers([](const Tensor& x) { return relu(x); },
                                       [](double v) { return v > 0 ? v : 0.0; },
                                       [](std::int64_t v) { return v > 0 ? v : 0; }),
                   1};
  table["Exp"] = {
      unary([](const Tensor& x) { return exp(x); }, [](double v) { return std::exp(v); }), 1};
  table["Log"] = {
      unary([](const Tensor& x) { return log(x); }, [](double v) { return std::log(v); }), 1};
  table["Sqrt"] = {
      unary([](const Tensor& x) { return sqrt(x); }, [](double v) { return std::sqrt(v); }), 1};
  table["Reciprocal"] = {
      unary([](const Tensor& x) { return div(Tensor::scalar(1.0, x.dtype()), x); },
            [](double v) { return 1.0 / v; }),
      1};
  table["Sigmoid"] = {unary([](const Tensor& x) { return sigmoid(x); },
                            [](double v) { return 1.0 / (1.0 + std::exp(-v)); }),
                      1};
  table["Tanh"] = {
      unary([](const Tensor& x) { return tanh(x); }, [](double v) { return std::tanh(v); }), 1};
  const std::pair<const char*, double (*)(double)> plain[] = {
      {"Floor", [](double v) { return std::floor(v); }},
      {"Ceil", [](double v) { return std::ceil(v); }},
      {"Round", round_half_even},
      {"Sin", [](double v) { return std::sin(v); }},
      {"Cos", [](double v) { return std::cos(v); }},
      {"Tan", [](double v) { return std::tan(v); }},
      {"Asin", [](double v) { return std::asin(v); }},
      {"Acos", [](double v) { return std::acos(v); }},
      {"Atan", [](double v) { return std::atan(v); }},
      {"Sinh", [](double v) { return std::sinh(v); }},
      {"Cosh", [](double v) { return std::cosh(v); }},
      {"Asinh", [](double v) { return std::asinh(v); }},
      {"Acosh", [](double v) { return std::acosh(v); }},
      {"Atanh", [](double v) { return std::atanh(v); }},
      {"Erf", [](double v) { return std::erf(v); }},
      {"Softplus", [](double v) { return v > 30 ? v : std::log1p(std::exp(v)); }},
      {"Softsign", [](double v) { return v / (1.0 + std::abs(v)); }},
      {"HardSwish", [](double v) { return v * std::clamp(v / 6.0 + 0.5, 0.0, 1.0); }}};
  for (const auto& [name, f] : plain) table[name] = {unary(none, f), 1};
  table["LeakyRelu"] = {[](const OpContext& ctx) -> std::vector<OnnxValue> {
                          const OnnxValue& x = ctx.input(0);
                          const double alpha = ctx.attr_float("alpha", 0.01);
                          if (is_float_type(x.type))
                            return {make_value(leaky_relu(x.tensor, alpha), x.type)};
                          return {float_map(ctx, x, [](double v) { return v; })};
                        },
                        1};
  table["Elu"] = {activation([](const OpContext& ctx) {
                    const double alpha = ctx.attr_float("alpha", 1.0);
                    return [alpha](double v) { return v >= 0 ? v : alpha * std::expm1(v); };
                  }),
                  1};
  table["Celu"] = {activation([](const OpContext& ctx) {
                     const double alpha = ctx.attr_float("alpha", 1.0);
                     return [alpha](double v) {
                       return std::max(0.0, v) + std::min(0.0, alpha * std::expm1(v / alpha));
                     };
                   }),
                   12};
  table["Selu"] = {activation([](const OpContext& ctx) {
                     const double alpha = ctx.attr_float("alpha", 1.67326319217681884765625);
                     const double gamma = ctx.attr_float("gamma", 1.05070102214813232421875);
                     return [alpha, gamma](double v) {
                       return gamma * (v > 0 ? v : alpha * std::expm1(v));
                     };
                   }),
                   1};
  table["HardSigmoid"] = {activation([](const OpContext& ctx) {
                            const double alpha = ctx.attr_float("alpha", 0.2);
                            const double beta = ctx.attr_float("beta", 0.5);
                            return [alpha, beta](double v) {
                              return std::clamp(alpha * v + beta, 0.0, 1.0);
                            };
                          }),
                          1};
  table["ThresholdedRelu"] = {activation([](const OpContext& ctx) {
                                const double alpha = ctx.attr_float("alpha", 1.0);
                                return [alpha](double v) { return v > alpha ? v : 0.0; };
                              }),
                              10};
  table["Shrink"] = {activation([](const OpContext& ctx) {
                       const double bias = ctx.attr_float("bias", 0.0);
                       const double lambd = ctx.attr_float("lambd", 0.5);
                       return [bias, lambd](double v) {
                         return v < -lambd ? v + bias : (v > lambd ? v - bias : 0.0);
                       };
                     }),
                     9};
  table["IsNaN"] = {is_nan_kernel, 9};
  table["IsInf"] = {is_inf_kernel, 10};
  table["PRelu"] = {prelu_kernel, 1};
}

}  // namespace lathe::onnx_detail
