// Activations: relu, leaky_relu, sigmoid, tanh, gelu (exact and tanh), softmax, log_softmax.
#include <cmath>
#include <numbers>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/fast_math.h"
#include "src/ops/kernels.h"

namespace lathe {
namespace {

using detail::map_binary;
using detail::map_unary;

constexpr double kSqrt2OverPi = 0.7978845608028654;  // sqrt(2 / pi)
constexpr double kGeluCubic = 0.044715;

// Row-wise softmax family over one axis, viewed as [outer, extent, inner]. `row` gets a pointer
// to the first element of one slice, its stride and its length.
template <class T, class Row>
void for_each_slice(const Shape& shape, std::int64_t axis, Row row) {
  const auto view = detail::axis_view(shape, axis);
  parallel_for(
      view.outer * view.inner,
      std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(view.extent, 1)),
      [&](std::int64_t begin, std::int64_t end) {
        for (std::int64_t s = begin; s < end; ++s) {
          const std::int64_t o = s / view.inner, j = s % view.inner;
          row(o * view.extent * view.inner + j, view.inner, view.extent);
        }
      });
}

// One slice of softmax (log = false) or log_softmax (log = true): n values `stride` apart from
// x + at, written to y + at. The exponentials are summed in double after shifting by the peak.
template <class T>
void softmax_forward_slice(const T* x, T* y, std::int64_t at, std::int64_t stride, std::int64_t n,
                           bool log) {
  T peak = -INFINITY;
  for (std::int64_t k = 0; k < n; ++k) peak = std::max(peak, x[at + k * stride]);
  double total = 0;
  for (std::int64_t k = 0; k < n; ++k) total += std::exp(x[at + k * stride] - peak);
  const T log_total = static_cast<T>(std::log(total));
  for (std::int64_t k = 0; k < n; ++k) {
    const T shifted = x[at + k * stride] - peak;
    y[at + k * stride] = log ? shifted - log_total : std::exp(shifted - log_total);
  }
}

// softmax's backward on one slice, from the output y: dx = y * (dy - sum(dy * y)).
template <class T>
void softmax_backward_slice(const T* dy, const T* y, T* dx, std::int64_t at, std::int64_t stride,
                            std::int64_t n) {
  double dot = 0;
  for (std::int64_t k = 0; k < n; ++k) dot += dy[at + k * stride] * y[at + k * stride];
  for (std::int64_t k = 0; k < n; ++k) {
    const auto i = at + k * stride;
    dx[i] = y[i] * (dy[i] - static_cast<T>(dot));
  }
}

// log_softmax's backward on one slice, from the output y: dx = dy - exp(y) * sum(dy).
template <class T>
void log_softmax_backward_slice(const T* dy, const T* y, T* dx, std::int64_t at,
                                std::int64_t stride, std::int64_t n) {
  double total = 0;
  for (std::int64_t k = 0; k < n; ++k) total += dy[at + k * stride];
  for (std::int64_t k = 0; k < n; ++k) {
    const auto i = at + k * stride;
    dx[i] = dy[i] - std::exp(y[i]) * static_cast<T>(total);
  }
}

// The shells softmax and log_softmax share: each runs its slice kernel over every slice along
// `axis`, split over the pool. Forward: out from a. Backward: the input gradient from the
// upstream gradient g and the saved output y.
Tensor softmax_forward(const char* op, const Tensor& a, std::int64_t axis, bool log) {
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  detail::dispatch_floating(a.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    T* y = out.data<T>();
    for_each_slice<T>(a.shape(), axis, [&](std::int64_t at, std::int64_t stride, std::int64_t n) {
      softmax_forward_slice(x, y, at, stride, n, log);
    });
  });
  return out;
}

Tensor softmax_backward(const char* op, const Tensor& g, const Tensor& y, std::int64_t axis,
                        bool log) {
  Tensor grad = Tensor::empty(g.shape(), g.dtype());
  detail::dispatch_floating(g.dtype(), op, [&](auto tag) {
    using T = decltype(tag);
    const T* dy = g.data<T>();
    const T* out = y.data<T>();
    T* dx = grad.data<T>();
    for_each_slice<T>(g.shape(), axis, [&](std::int64_t at, std::int64_t stride, std::int64_t n) {
      if (log) {
        log_softmax_backward_slice(dy, out, dx, at, stride, n);
      } else {
        softmax_backward_slice(dy, out, dx, at, stride, n);
      }
    });
  });
  return grad;
}

}  // namespace

Tensor relu(const Tensor& a) {
  Tensor out = map_unary("relu", a, [](auto x) { return x > 0 ? x : decltype(x)(0); });
  if (!should_record({&a})) return out;
  return record(
      Op::Relu, out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{map_binary(
            "relu backward", g, out, [](auto dy, auto y) { return y > 0 ? dy : decltype(dy)(0); })};
      });
}

Tensor leaky_relu(const Tensor& a, double negative_slope) {
  Tensor out = map_unary("leaky_relu", a, [negative_slope](auto x) {
    return x > 0 ? x : static_cast<decltype(x)>(negative_slope) * x;
  });
  if (!should_record({&a})) return out;
  return record(Op::LeakyRelu, out, {a},
                [a = a.detach(), negative_slope](const Tensor& g, const std::vector<bool>&) {
                  return std::vector<Tensor>{
                      map_binary("leaky_relu backward", g, a, [negative_slope](auto dy, auto x) {
                        using T = decltype(x);
                        return x > 0 ? dy : static_cast<T>(negative_slope) * dy;
                      })};
                });
}

Tensor sigmoid(const Tensor& a) {
  Tensor out = map_unary("sigmoid", a, [](auto x) {
    using T = decltype(x);
    // Written so neither branch overflows exp().
    if (x >= 0) return T(1) / (T(1) + std::exp(-x));
    const T e = std::exp(x);
    return e / (T(1) + e);
  });
  if (!should_record({&a})) return out;
  return record(
      Op::Sigmoid, out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{map_binary("sigmoid backward", g, out,
                                              [](auto dy, auto y) { return dy * y * (1 - y); })};
      });
}

Tensor tanh(const Tensor& a) {
  Tensor out = map_unary("tanh", a, [](auto x) { return detail::tanh_fast(x); });
  if (!should_record({&a})) return out;
  return record(
      Op::Tanh, out, {a}, [out = out.detach()](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{
            map_binary("tanh backward", g, out, [](auto dy, auto y) { return dy * (1 - y * y); })};
      });
}

Tensor gelu(const Tensor& a, GeluApproximation approximation) {
  if (approximation == GeluApproximation::Tanh) {
    Tensor out = map_unary("gelu_tanh", a, [](auto x) {
      using T = decltype(x);
      const T inner = static_cast<T>(kSqrt2OverPi) * (x + static_cast<T>(kGeluCubic) * x * x * x);
      return T(0.5) * x * (T(1) + detail::tanh_fast(inner));
    });
    if (!should_record({&a})) return out;
    return record(
        Op::GeluTanh, out, {a}, [a = a.detach()](const Tensor& g, const std::vector<bool>&) {
          return std::vector<Tensor>{map_binary("gelu_tanh backward", g, a, [](auto dy, auto x) {
            using T = decltype(x);
            const T k = static_cast<T>(kSqrt2OverPi), c = static_cast<T>(kGeluCubic);
            const T t = detail::tanh_fast(k * (x + c * x * x * x));
            const T dinner = k * (T(1) + T(3) * c * x * x);
            return dy * (T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * dinner);
          })};
        });
  }
  Tensor out = map_unary("gelu", a, [](auto x) {
    using T = decltype(x);
    return T(0.5) * x * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>));
  });
  if (!should_record({&a})) return out;
  return record(Op::Gelu, out, {a}, [a = a.detach()](const Tensor& g, const std::vector<bool>&) {
    return std::vector<Tensor>{map_binary("gelu backward", g, a, [](auto dy, auto x) {
      using T = decltype(x);
      // d/dx x * Phi(x) = Phi(x) + x * phi(x)
      const T cdf = T(0.5) * (T(1) + std::erf(x / std::numbers::sqrt2_v<T>));
      const T pdf =
          std::exp(T(-0.5) * x * x) * std::numbers::inv_sqrtpi_v<T> / std::numbers::sqrt2_v<T>;
      return dy * (cdf + x * pdf);
    })};
  });
}

Tensor softmax(const Tensor& a, std::int64_t axis) {
  detail::require_floating("softmax", a);
  axis = detail::normalize_axis("softmax", axis, a.shape());
  Tensor out = softmax_forward("softmax", a, axis, false);
  if (!should_record({&a})) return out;
  return record(
      Op::Softmax, out, {a}, [out = out.detach(), axis](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{softmax_backward("softmax backward", g, out, axis, false)};
      });
}

Tensor log_softmax(const Tensor& a, std::int64_t axis) {
  detail::require_floating("log_softmax", a);
  axis = detail::normalize_axis("log_softmax", axis, a.shape());
  Tensor out = softmax_forward("log_softmax", a, axis, true);
  if (!should_record({&a})) return out;
  return record(
      Op::LogSoftmax, out, {a},
      [out = out.detach(), axis](const Tensor& g, const std::vector<bool>&) {
        return std::vector<Tensor>{softmax_backward("log_softmax backward", g, out, axis, true)};
      });
}

}  // namespace lathe
