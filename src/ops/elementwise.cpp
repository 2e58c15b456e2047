// Element-wise ops with NumPy broadcasting. Each op's backward sits right under its forward.
#include <cmath>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/kernels.h"

namespace lathe {
namespace detail {

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const std::int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const std::int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      throw Error(fmt::format("{}: shapes {} and {} cannot be broadcast (axis {}: {} vs {})", op,
                              shape_str(a), shape_str(b), i, da, db));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<std::int64_t> broadcast_strides(const Shape& shape, const Shape& target) {
  std::vector<std::int64_t> strides(target.size(), 0);
  const std::size_t lead = target.size() - shape.size();
  std::int64_t stride = 1;
  for (std::size_t i = shape.size(); i-- > 0;) {
    strides[lead + i] = shape[i] == 1 ? 0 : stride;
    stride *= shape[i];
  }
  return strides;
}

Tensor expand_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  if (broadcast_shapes("expand", a.shape(), shape) != shape)
    throw Error(fmt::format("expand: shape {} cannot be expanded to {}", shape_str(a.shape()),
                            shape_str(shape)));
  Tensor out = Tensor::empty(shape, a.dtype());
  if (out.numel() == 0) return out;
  // One read stride set: every output row copies (or repeats) a row of `a`.
  const std::array<std::vector<std::int64_t>, 1> strides{broadcast_strides(a.shape(), shape)};
  const std::int64_t inner = shape.empty() ? 1 : shape.back();
  const std::int64_t step = shape.empty() ? 0 : strides[0].back();
  dispatch_floating(a.dtype(), "expand", [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* o = out.data<T>();
    for_each_row<1>(shape, strides, 0, out.numel() / inner, [&](std::int64_t at, auto offsets) {
      for (std::int64_t j = 0; j < inner; ++j) o[at + j] = x[offsets[0] + j * step];
    });
  });
  return out;
}

}  // namespace detail

using detail::broadcast_binary;
using detail::map_binary;
using detail::map_unary;

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary("add", a, b, [](auto x, auto y) { return x + y; });
  if (!should_record({&a, &b})) return out;
  return record(Op::Add, out, {a, b},
                [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
                });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary("sub", a, b, [](auto x, auto y) { return x - y; });
  if (!should_record({&a, &b})) return out;
  return record(
      Op::Sub, out, {a, b},
      [sa = a.shape(), sb = b.shape()](const Tensor& g, const std::vector<bool>& needs) {
        return std::vector<Tensor>{sum_to(g, sa), needs[1] ? sum_to(neg(g), sb) : Tensor()};
      });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary("mul", a, b, [](auto x, auto y) { return x * y; });
  if (!should_record({&a, &b})) return out;
  return record(Op::Mul, out, {a, b},
                [a = a.detach(), b = b.detach()](const Tensor& g, const std::vector<bool>& needs) {
                  return std::vector<Tensor>{needs[0] ? sum_to(mul(g, b), a.shape()) : Tensor(),
                                             needs[1] ? sum_to(mul(g, a), b.shape()) : Tensor()};
                });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = broadcast_binary("div", a, b, [](auto x, auto y) { return x / y; });
  if (!should_record({&a, &b})) return out;
  return record(Op::Div, out, {a, b},
                [a = a.detach(), b = b.detach(), out = out.detach()](
                    const Tensor& g, const std::vector<bool>& needs) {
                  // d(a/b)/db = -a/b^2 = -out/b
                  return std::vector<Tensor>{
                      needs[0] ? sum_to(div(g, b), a.shape()) : Tensor(),
                      needs[1] ? sum_to(neg(div(mul(g, out), b)), b.shape()) : Tensor()};
                });
}

Tensor neg(const Tensor& a) {
  Tensor out = map_unary("neg", a, [](auto x) { return -x; });
  if (!should_record({&a})) return out;
  return record(Op::Neg, out, {a}, [](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{neg(g)};
  });
}

Tensor exp(const Tensor& a) {
  Tensor out = map_unary("exp", a, [](auto x) { return std::exp(x); });
  if (!should_record({&a})) return out;
  return record(Op::Exp, out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{mul(g, out)};
  });
}

Tensor log(const Tensor& a) {
  Tensor out = map_unary("log", a, [](auto x) { return std::log(x); });
  if (!should_record({&a})) return out;
  return record(Op::Log, out, {a}, [a = a.detach()](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{div(g, a)};
  });
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor out =
      broadcast_binary("pow", base, exponent, [](auto x, auto y) { return std::pow(x, y); });
  if (!should_record({&base, &exponent})) return out;
  return record(Op::Pow, out, {base, exponent},
                [a = base.detach(), b = exponent.detach(), out = out.detach()](
                    const Tensor& g, const std::vector<bool>& needs) {
                  // d/da a^b = b a^(b-1); d/db a^b = a^b log a
                  Tensor ga, gb;
                  if (needs[0])
                    ga = sum_to(mul(g, mul(b, pow(a, sub(b, Tensor::scalar(1, b.dtype()))))),
                                a.shape());
                  if (needs[1]) gb = sum_to(mul(g, mul(out, log(a))), b.shape());
                  return std::vector<Tensor>{ga, gb};
                });
}

Tensor pow(const Tensor& base, double exponent) {
  Tensor out = map_unary("pow_scalar", base, [exponent](auto x) {
    return std::pow(x, static_cast<decltype(x)>(exponent));
  });
  if (!should_record({&base})) return out;
  return record(Op::PowScalar, out, {base},
                [a = base.detach(), exponent](const Tensor& g, const std::vector<bool>&) {
                  Tensor local = map_unary("pow_scalar backward", a, [exponent](auto x) {
                    using T = decltype(x);
                    return static_cast<T>(exponent) * std::pow(x, static_cast<T>(exponent - 1));
                  });
                  return std::vector<Tensor>{mul(g, local)};
                });
}

Tensor sqrt(const Tensor& a) {
  Tensor out = map_unary("sqrt", a, [](auto x) { return std::sqrt(x); });
  if (!should_record({&a})) return out;
  return record(
      Op::Sqrt, out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{
            map_binary("sqrt backward", g, out, [](auto dy, auto y) { return dy / (2 * y); })};
      });
}

Tensor abs(const Tensor& a) {
  Tensor out = map_unary("abs", a, [](auto x) { return std::abs(x); });
  if (!should_record({&a})) return out;
  return record(Op::Abs, out, {a}, [a = a.detach()](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map_binary("abs backward", g, a, [](auto dy, auto x) {
      using T = decltype(x);
      return x > 0 ? dy : (x < 0 ? -dy : T(0));
    })};
  });
}

Tensor clamp(const Tensor& a, std::optional<double> min, std::optional<double> max) {
  if (min && max && *min > *max)
    throw Error(fmt::format("clamp: min {} is greater than max {}", *min, *max));
  const double lo = min.value_or(-INFINITY), hi = max.value_or(INFINITY);
  Tensor out = map_unary("clamp", a, [lo, hi](auto x) {
    using T = decltype(x);
    return std::min(std::max(x, static_cast<T>(lo)), static_cast<T>(hi));
  });
  if (!should_record({&a})) return out;
  return record(
      Op::Clamp, out, {a}, [a = a.detach(), lo, hi](const Tensor& g, const std::vector<bool>&) {
        // The gradient passes where the input lies inside [min, max], as in PyTorch.
        return std::vector<Tensor>{map_binary("clamp backward", g, a, [lo, hi](auto dy, auto x) {
          using T = decltype(x);
          return (x >= static_cast<T>(lo) && x <= static_cast<T>(hi)) ? dy : T(0);
        })};
      });
}

Tensor operator+(const Tensor& a, const Tensor& b) {
  return add(a, b);
}
Tensor operator-(const Tensor& a, const Tensor& b) {
  return sub(a, b);
}
Tensor operator*(const Tensor& a, const Tensor& b) {
  return mul(a, b);
}
Tensor operator/(const Tensor& a, const Tensor& b) {
  return div(a, b);
}
Tensor operator-(const Tensor& a) {
  return neg(a);
}
Tensor operator+(const Tensor& a, double b) {
  return add(a, Tensor::scalar(b, a.dtype()));
}
Tensor operator-(const Tensor& a, double b) {
  return sub(a, Tensor::scalar(b, a.dtype()));
}
Tensor operator*(const Tensor& a, double b) {
  return mul(a, Tensor::scalar(b, a.dtype()));
}
Tensor operator/(const Tensor& a, double b) {
  return div(a, Tensor::scalar(b, a.dtype()));
}
Tensor operator+(double a, const Tensor& b) {
  return add(Tensor::scalar(a, b.dtype()), b);
}
Tensor operator-(double a, const Tensor& b) {
  return sub(Tensor::scalar(a, b.dtype()), b);
}
Tensor operator*(double a, const Tensor& b) {
  return mul(Tensor::scalar(a, b.dtype()), b);
}
Tensor operator/(double a, const Tensor& b) {
  return div(Tensor::scalar(a, b.dtype()), b);
}

}  // namespace lathe
