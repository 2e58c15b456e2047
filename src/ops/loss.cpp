// Losses, each the mean over the batch: mse, cross_entropy (fused log-softmax + NLL, optional
// label smoothing), nll, binary cross-entropy with logits.
#include <cmath>
#include <type_traits>

#include "lathe/autograd.h"
#include "lathe/ops.h"
#include "src/ops/fast_math.h"
#include "src/ops/kernels.h"

namespace lathe {
namespace {

void require_same_shape(const char* op, const Tensor& a, const char* a_name, const Tensor& b,
                        const char* b_name) {
  if (a.shape() != b.shape())
    throw Error(fmt::format("{}: {} shape {} and {} shape {} differ", op, a_name,
                            shape_str(a.shape()), b_name, shape_str(b.shape())));
}

// Checks [N,C] scores against int64 [N] targets in [0, C) and optional float [C] weights.
// Returns the targets and the per-sample weights w[y_i] (all 1 without class weights).
struct Targets {
  std::vector<std::int64_t> labels;
  std::vector<double> sample_weights;
  double total_weight = 0;
};

Targets check_targets(const char* op, const Tensor& scores, const Tensor& targets,
                      const Tensor& class_weights) {
  detail::require_floating(op, scores);
  detail::require_defined(op, targets, "targets");
  if (scores.dim() != 2)
    throw Error(
        fmt::format("{}: expected scores of shape [N,C], got {}", op, shape_str(scores.shape())));
  const auto n = scores.size(0), classes = scores.size(1);
  if (targets.dtype() != DType::Int64)
    throw Error(fmt::format("{}: targets must be int64 class indices, got {}", op,
                            dtype_name(targets.dtype())));
  if (targets.shape() != Shape{n})
    throw Error(fmt::format("{}: scores {} need targets of shape [{}], got {}", op,
                            shape_str(scores.shape()), n, shape_str(targets.shape())));
  if (class_weights.defined() && class_weights.shape() != Shape{classes})
    throw Error(fmt::format("{}: class weights must have shape [{}], got {}", op, classes,
                            shape_str(class_weights.shape())));
  Targets out;
  const std::int64_t* labels = targets.data<std::int64_t>();
  out.labels.assign(labels, labels + n);
  const std::vector<double> weights =
      class_weights.defined() ? class_weights.to_vector() : std::vector<double>();
  out.sample_weights.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const auto y = out.labels[i];
    if (y < 0 || y >= classes)
      throw Error(fmt::format("{}: target {} at position {} is out of range for {} classes", op, y,
                              i, classes));
    out.sample_weights.push_back(weights.empty() ? 1.0 : weights[y]);
    out.total_weight += out.sample_weights.back();
  }
  if (n == 0) throw Error(fmt::format("{}: empty batch (shape {})", op, shape_str(scores.shape())));
  return out;
}

// The sums cross_entropy's loss is made of: sum_i w_i * (logsumexp(x_i) - x[i, y_i]), and for
// label smoothing sum_i sum_c w[c] * (logsumexp(x_i) - x[i, c]).
struct CrossEntropySums {
  double loss = 0, smooth = 0;
};

// One pass over [N, C] logits x: the loss sums, and the softmax in p for the backward. `weights`
// are the per-class weights for smoothing (empty without smoothing).
template <class T>
CrossEntropySums cross_entropy_forward_rows(const T* x, const Targets& t,
                                            const std::vector<double>& weights,
                                            std::int64_t classes, T* p) {
  const auto n = static_cast<std::int64_t>(t.labels.size());
  CrossEntropySums sums;
  std::vector<T> peaks(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) {
    const T* row = x + i * classes;
    T peak = -INFINITY;
    for (std::int64_t c = 0; c < classes; ++c) peak = std::max(peak, row[c]);
    peaks[i] = peak;
    for (std::int64_t c = 0; c < classes; ++c) p[i * classes + c] = row[c] - peak;
  }
  // One pass over all n x C exponentials: with 10 classes a loop per row is too short to
  // vectorize (3.8 us for the seed's [64, 10] forward). float: libm's expf, a call per
  // element, was most of the loss's time at batch 64.
  for (std::int64_t j = 0; j < n * classes; ++j) {
    if constexpr (std::is_same_v<T, float>)
      p[j] = detail::exp_nonpositive(p[j]);
    else
      p[j] = std::exp(p[j]);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const T* row = x + i * classes;
    const T peak = peaks[i];
    double total = 0;
    for (std::int64_t c = 0; c < classes; ++c) total += p[i * classes + c];
    for (std::int64_t c = 0; c < classes; ++c) p[i * classes + c] /= static_cast<T>(total);
    const double log_sum_exp = peak + std::log(total);
    sums.loss += t.sample_weights[i] * (log_sum_exp - row[t.labels[i]]);
    if (!weights.empty())
      for (std::int64_t c = 0; c < classes; ++c) sums.smooth += weights[c] * (log_sum_exp - row[c]);
  }
  return sums;
}

// The logits' gradient dx from the saved softmax p and the upstream value:
// d loss / d x[i,c] = w_i / W * (p[i,c] - [c == y_i]), and with smoothing
// + eps / W * (sum(w) / C * p[i,c] - w[c] / C - w_i * (p[i,c] - [c == y_i])).
template <class T>
void cross_entropy_backward_rows(const T* p, const Targets& t, const std::vector<double>& weights,
                                 std::int64_t classes, double eps, double upstream, T* dx) {
  double weight_sum = 0;
  for (double w : weights) weight_sum += w;
  const double smooth_scale = upstream * eps / t.total_weight;
  for (std::size_t i = 0; i < t.labels.size(); ++i) {
    const double w = t.sample_weights[i];
    const T scale = static_cast<T>(upstream * w / t.total_weight);
    for (std::int64_t c = 0; c < classes; ++c) {
      const auto at = static_cast<std::int64_t>(i) * classes + c;
      const T hit = c == t.labels[i] ? T(1) : T(0);
      dx[at] = scale * (p[at] - hit);
      if (eps > 0)
        dx[at] += static_cast<T>(
            smooth_scale *
            ((weight_sum * p[at] - weights[c]) / static_cast<double>(classes) - w * (p[at] - hit)));
    }
  }
}

}  // namespace

Tensor mse_loss(const Tensor& prediction, const Tensor& target) {
  detail::require_floating("mse_loss", prediction);
  detail::require_floating("mse_loss", target);
  detail::require_same_dtype("mse_loss", prediction, target);
  require_same_shape("mse_loss", prediction, "prediction", target, "target");
  const auto n = static_cast<double>(prediction.numel());
  Tensor out;
  {
    NoGradGuard inner;
    const Tensor diff = prediction - target;
    out = sum(diff * diff) / n;
  }
  if (!should_record({&prediction, &target})) return out;
  return record(Op::MseLoss, out, {prediction, target},
                [p = prediction.detach(), t = target.detach(), n](const Tensor& g,
                                                                  const std::vector<bool>& needs) {
                  const Tensor grad = (p - t) * (g * (2.0 / n));
                  return std::vector<Tensor>{grad, needs[1] ? neg(grad) : Tensor()};
                });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& class_weights,
                     double label_smoothing) {
  Targets t = check_targets("cross_entropy", logits, targets, class_weights);
  const double eps = label_smoothing;
  if (!(eps >= 0 && eps < 1))
    throw Error(fmt::format("cross_entropy: label_smoothing must be in [0, 1), got {}", eps));
  const auto classes = logits.size(1);
  // Smoothing spreads eps / C of the target over every class, each weighted by its class weight.
  std::vector<double> weights;
  if (eps > 0)
    weights = class_weights.defined() ? class_weights.to_vector()
                                      : std::vector<double>(static_cast<std::size_t>(classes), 1.0);
  Tensor probabilities = Tensor::empty(logits.shape(), logits.dtype());  // kept for backward
  CrossEntropySums sums;
  detail::dispatch_floating(logits.dtype(), "cross_entropy", [&](auto tag) {
    using T = decltype(tag);
    sums =
        cross_entropy_forward_rows(logits.data<T>(), t, weights, classes, probabilities.data<T>());
  });
  const double mean = sums.loss / t.total_weight;
  const double value =
      eps > 0 ? (1 - eps) * mean + sums.smooth / t.total_weight * (eps / classes) : mean;
  Tensor out = Tensor::scalar(value, logits.dtype());
  if (!should_record({&logits})) return out;
  return record(Op::CrossEntropy, out, {logits},
                [probabilities, t = std::move(t), classes, eps, weights = std::move(weights)](
                    const Tensor& g, const std::vector<bool>&) {
                  Tensor grad = Tensor::empty(probabilities.shape(), probabilities.dtype());
                  detail::dispatch_floating(grad.dtype(), "cross_entropy backward", [&](auto tag) {
                    using T = decltype(tag);
                    cross_entropy_backward_rows(probabilities.data<T>(), t, weights, classes, eps,
                                                g.item(), grad.data<T>());
                  });
                  return std::vector<Tensor>{grad};
                });
}

Tensor nll_loss(const Tensor& log_probs, const Tensor& targets, const Tensor& class_weights) {
  const Targets t = check_targets("nll_loss", log_probs, targets, class_weights);
  const auto classes = log_probs.size(1);
  double loss = 0;
  detail::dispatch_floating(log_probs.dtype(), "nll_loss", [&](auto tag) {
    using T = decltype(tag);
    const T* x = log_probs.data<T>();
    for (std::size_t i = 0; i < t.labels.size(); ++i)
      loss -= t.sample_weights[i] * x[static_cast<std::int64_t>(i) * classes + t.labels[i]];
  });
  Tensor out = Tensor::scalar(loss / t.total_weight, log_probs.dtype());
  if (!should_record({&log_probs})) return out;
  return record(Op::NllLoss, out, {log_probs},
                [shape = log_probs.shape(), t](const Tensor& g, const std::vector<bool>&) {
                  Tensor grad = Tensor::zeros(shape, g.dtype());
                  const double upstream = g.item();
                  for (std::size_t i = 0; i < t.labels.size(); ++i)
                    grad.set({static_cast<std::int64_t>(i), t.labels[i]},
                             -upstream * t.sample_weights[i] / t.total_weight);
                  return std::vector<Tensor>{grad};
                });
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets) {
  const char* op = "binary_cross_entropy_with_logits";
  detail::require_floating(op, logits);
  detail::require_floating(op, targets);
  detail::require_same_dtype(op, logits, targets);
  require_same_shape(op, logits, "logits", targets, "targets");
  const auto n = static_cast<double>(logits.numel());
  // max(x, 0) - x*y + log(1 + exp(-|x|)): stable for large |x|.
  const Tensor elementwise = detail::map_binary(op, logits, targets, [](auto x, auto y) {
    using T = decltype(x);
    return std::max(x, T(0)) - x * y + std::log1p(std::exp(-std::abs(x)));
  });
  Tensor out;
  {
    NoGradGuard inner;
    out = sum(elementwise) / n;
  }
  if (!should_record({&logits, &targets})) return out;
  return record(Op::BinaryCrossEntropyWithLogits, out, {logits, targets},
                [x = logits.detach(), y = targets.detach(), n](const Tensor& g,
                                                               const std::vector<bool>& needs) {
                  const Tensor scale = g / n;
                  Tensor gx, gy;
                  if (needs[0]) gx = (sigmoid(x) - y) * scale;
                  if (needs[1]) gy = neg(x) * scale;
                  return std::vector<Tensor>{gx, gy};
                });
}

}  // namespace lathe
