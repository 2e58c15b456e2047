// ONNX operators: reduce.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

enum class Reduce { Sum, Mean, Max, Min, Prod, L1, L2, LogSum, LogSumExp, SumSquare };

// ---------------------------------------------------------------------------------------------
// Axes and shapes

// The sorted, distinct axes a reduce node reduces. Empty means none (each output element is
// the reduction of one input element), which only noop_with_empty_axes asks for: otherwise an
// empty or absent axes list means every axis. `axes_input_since` is the opset from which axes
// come as input 1 instead of an attribute.
std::vector<std::int64_t> reduce_axes(const OpContext& ctx, std::int64_t axes_input_since,
                                      std::int64_t rank) {
  std::vector<std::int64_t> axes;
  bool noop = false;
  if (ctx.opset() >= axes_input_since) {
    if (ctx.has_input(1)) axes = int_values(ctx, ctx.input(1), "axes");
    noop = ctx.attr_int("noop_with_empty_axes", 0) != 0;
  } else {
    axes = ctx.attr_ints("axes");
  }
  if (axes.empty()) {
    if (noop) return {};
    for (std::int64_t a = 0; a < rank; ++a) axes.push_back(a);
    return axes;
  }
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (auto& axis : axes) {
    const std::int64_t resolved = resolve_axis(ctx, axis, rank);
    if (seen[static_cast<std::size_t>(resolved)])
      ctx.fail(fmt::format("axis {} is listed twice", axis));
    seen[static_cast<std::size_t>(resolved)] = true;
    axis = resolved;
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

bool contains(const std::vector<std::int64_t>& axes, std::size_t axis) {
  return std::find(axes.begin(), axes.end(), static_cast<std::int64_t>(axis)) != axes.end();
}

// `shape` with the reduced axes set to 1 (keepdims) or dropped.
Shape reduced_shape(const Shape& shape, const std::vector<std::int64_t>& axes, bool keepdims) {
  Shape out;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (!contains(axes, d))
      out.push_back(shape[d]);
    else if (keepdims)
      out.push_back(1);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generic reduction loops (every storage type, no autograd)

// Calls f(in, out) for every input element with the offset of the output element it reduces
// into.
template <class F>
void for_each_reduced(const Shape& shape, const std::vector<std::int64_t>& axes, F&& f) {
  auto out_strides = contiguous_strides(reduced_shape(shape, axes, true));
  for (auto axis : axes) out_strides[static_cast<std::size_t>(axis)] = 0;
  for_each_broadcast(shape, {contiguous_strides(shape), out_strides},
                     [&](std::int64_t, const std::int64_t* offsets) { f(offsets[0], offsets[1]); });
}

// One output slot of a reduction computed in double. LogSumExp keeps a running peak so the
// exponentials never overflow.
struct Slot {
  double acc = 0;
  double peak = -kInf;
};

double initial_value(Reduce kind) {
  switch (kind) {
    case Reduce::Prod:
      return 1;
    case Reduce::Max:
      return -kInf;
    case Reduce::Min:
      return kInf;
    default:
      return 0;
  }
}

void accumulate(Reduce kind, Slot& s, double x) {
  switch (kind) {
    case Reduce::Sum:
    case Reduce::Mean:
    case Reduce::LogSum:
      s.acc += x;
      break;
    case Reduce::Prod:
      s.acc *= x;
      break;
    case Reduce::Max:  // NaN wins, as numpy's maximum.reduce
      if (!std::isnan(s.acc) && (std::isnan(x) || x > s.acc)) s.acc = x;
      break;
    case Reduce::Min:
      if (!std::isnan(s.acc) && (std::isnan(x) || x < s.acc)) s.acc = x;
      break;
    case Reduce::L1:
      s.acc += std::fabs(x);
      break;
    case Reduce::L2:
    case Reduce::SumSquare:
      s.acc += x * x;
      break;
    case Reduce::LogSumExp:
      if (std::isnan(x)) {
        s.acc = x;
      } else if (x > s.peak) {
        s.acc = s.acc * std::exp(s.peak - x) + 1;
        s.peak = x;
      } else if (s.peak != kInf && x != -kInf) {
        s.acc += std::exp(x - s.peak);
      }
      break;
  }
}

double finish(Reduce kind, const Slot& s, std::int64_t count) {
  switch (kind) {
    case Reduce::Mean:
      return s.acc / static_cast<double>(count);
    case Reduce::L2:
      return std::sqrt(s.acc);
    case Reduce::LogSum:
      return std::log(s.acc);
    case Reduce::LogSumExp:
      return s.peak + std::log(s.acc);
    default:
      return s.acc;
  }
}

// int64 storage <-> double, reading uint64 values (stored as their bit pattern) as unsigned.
double int_to_double(std::int64_t v, OnnxType type) {
  return type == OnnxType::Uint64 ? static_cast<double>(static_cast<std::uint64_t>(v))
                                  : static_cast<double>(v);
}

// Truncates toward zero as numpy's astype does, saturating instead of overflowing.
std::int64_t double_to_int(double v, OnnxType type) {
  if (std::isnan(v)) return 0;
  if (type == OnnxType::Uint64) {
    if (v <= 0) return 0;
    if (v >= 18446744073709551616.0) return -1;  // all ones: uint64's largest value
    return static_cast<std::int64_t>(static_cast<std::uint64_t>(v));
  }
  if (v <= -9223372036854775808.0) return std::numeric_limits<std::int64_t>::min();
  if (v >= 9223372036854775808.0) return std::numeric_limits<std::int64_t>::max();
  return static_cast<std::int64_t>(v);
}

// The reduction in double, for floats and for the integer reductions that are not exact in
// integer arithmetic (mean, L2, logs).
template <class T>
Tensor reduce_in_double(const OpContext& ctx, const OnnxValue& x,
                        const std::vector<std::int64_t>& axes, Reduce kind,
                        const Shape& out_shape) {
  Tensor out = new_tensor(ctx, out_shape, x.type);
  const std::int64_t n = out.numel();
  std::vector<Slot> slots(static_cast<std::size_t>(n), Slot{initial_value(kind), -kInf});
  const T* in = x.tensor.data<T>();
  for_each_reduced(x.shape(), axes, [&](std::int64_t i, std::int64_t o) {
    double v;
    if constexpr (std::is_same_v<T, std::int64_t>)
      v = int_to_double(in[i], x.type);
    else
      v = static_cast<double>(in[i]);
    accumulate(kind, slots[static_cast<std::size_t>(o)], v);
  });
  const std::int64_t count = n == 0 ? 0 : x.tensor.numel() / n;
  T* dst = out.data<T>();
  for (std::int64_t k = 0; k < n; ++k) {
    const double r = finish(kind, slots[static_cast<std::size_t>(k)], count);
    if constexpr (std::is_same_v<T, std::int64_t>)
      dst[k] = double_to_int(r, x.type);
    else
      dst[k] = static_cast<T>(r);
  }
  return out;
}

// The smallest and largest value of an integer type, as stored (uint64's largest is all ones).
std::pair<std::int64_t, std::int64_t> integer_range(OnnxType type) {
  switch (type) {
    case OnnxType::Bool:
      return {0, 1};
    case OnnxType::Uint8:
      return {0, 255};
    case OnnxType::Int8:
      return {-128, 127};
    case OnnxType::Uint16:
      return {0, 65535};
    case OnnxType::Int16:
      return {-32768, 32767};
    case OnnxType::Uint32:
      return {0, 4294967295};
    case OnnxType::Int32:
      return {-2147483648LL, 2147483647};
    case OnnxType::Uint64:
      return {0, -1};
    default:
      return {std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()};
  }
}

// Sum, products, L1, sum of squares, max and min of integers, wrapping like the ONNX integer
// types (computed modulo 2^64; make_value wraps to the type's width).
Tensor reduce_integers(const OpContext& ctx, const OnnxValue& x,
                       const std::vector<std::int64_t>& axes, Reduce kind, const Shape& out_shape) {
  Tensor out = new_tensor(ctx, out_shape, x.type);
  const auto [lowest, highest] = integer_range(x.type);
  const bool is_unsigned = x.type == OnnxType::Uint64;
  const auto less = [is_unsigned](std::int64_t a, std::int64_t b) {
    return is_unsigned ? static_cast<std::uint64_t>(a) < static_cast<std::uint64_t>(b) : a < b;
  };
  std::uint64_t init = 0;
  if (kind == Reduce::Prod) init = 1;
  if (kind == Reduce::Max) init = static_cast<std::uint64_t>(lowest);
  if (kind == Reduce::Min) init = static_cast<std::uint64_t>(highest);
  std::vector<std::uint64_t> acc(static_cast<std::size_t>(out.numel()), init);
  const std::int64_t* in = x.tensor.data<std::int64_t>();
  for_each_reduced(x.shape(), axes, [&](std::int64_t i, std::int64_t o) {
    const std::int64_t v = in[i];
    const auto u = static_cast<std::uint64_t>(v);
    std::uint64_t& a = acc[static_cast<std::size_t>(o)];
    switch (kind) {
      case Reduce::Sum:
        a += u;
        break;
      case Reduce::Prod:
        a *= u;
        break;
      case Reduce::L1:
        a += (v < 0 && !is_unsigned) ? 0 - u : u;
        break;
      case Reduce::SumSquare:
        a += u * u;
        break;
      case Reduce::Max:
        if (less(static_cast<std::int64_t>(a), v)) a = u;
        break;
      default:  // Min
        if (less(v, static_cast<std::int64_t>(a))) a = u;
        break;
    }
  });
  std::int64_t* dst = out.data<std::int64_t>();
  for (std::size_t k = 0; k < acc.size(); ++k) dst[k] = static_cast<std::int64_t>(acc[k]);
  return out;
}

Tensor reduce_generic(const OpContext& ctx, const OnnxValue& x,
                      const std::vector<std::int64_t>& axes, Reduce kind, bool keepdims) {
  const Shape out_shape = reduced_shape(x.shape(), axes, keepdims);
  return visit_storage(x.tensor, [&](auto tag) -> Tensor {
    using T = decltype(tag);
    if constexpr (std::is_same_v<T, std::int64_t>) {
      const bool exact = kind == Reduce::Sum || kind == Reduce::Prod || kind == Reduce::L1 ||
                         kind == Reduce::SumSquare || kind == Reduce::Max || kind == Reduce::Min;
      if (exact) return reduce_integers(ctx, x, axes, kind, out_shape);
    }
    return reduce_in_double<T>(ctx, x, axes, kind, out_shape);
  });
}

// ---------------------------------------------------------------------------------------------
// Float reductions through lathe's differentiable ops

// Sum over `axes`; over no axis it is the identity.
Tensor sum_over(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdims) {
  return axes.empty() ? a : sum(a, axes, keepdims);
}

// Max over each axis in turn (kept as extent 1), then the reduced axes dropped if asked.
Tensor max_over(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdims) {
  Tensor out = a;
  for (auto axis : axes) out = max(out, axis, true);
  return keepdims ? out : reshape(out, reduced_shape(a.shape(), axes, false));
}

// log(sum(exp(a))) shifted by the (detached) peak of each slot, so exp never overflows.
Tensor log_sum_exp_over(const Tensor& a, const std::vector<std::int64_t>& axes, bool keepdims) {
  if (axes.empty()) return a;
  Tensor peak = max_over(a.detach(), axes, true);
  visit_storage(peak, [&](auto tag) {
    using T = decltype(tag);
    T* p = peak.data<T>();
    for (std::int64_t k = 0; k < peak.numel(); ++k)
      if (!std::isfinite(p[k])) p[k] = 0;  // the shift only has to be finite
  });
  Tensor out = add(log(sum(exp(sub(a, peak)), axes, true)), peak);
  return keepdims ? out : reshape(out, reduced_shape(a.shape(), axes, false));
}

// A float reduction with lathe's ops, or an undefined tensor where only the generic loop fits.
Tensor reduce_lathe(const Tensor& a, const std::vector<std::int64_t>& axes, Reduce kind,
                    bool keepdims) {
  switch (kind) {
    case Reduce::Sum:
      return sum_over(a, axes, keepdims);
    case Reduce::Mean:
      return axes.empty() ? a : mean(a, axes, keepdims);
    case Reduce::Max:
      return max_over(a, axes, keepdims);
    case Reduce::Min:
      return neg(max_over(neg(a), axes, keepdims));
    case Reduce::L1:
      return sum_over(abs(a), axes, keepdims);
    case Reduce::L2:
      return sqrt(sum_over(mul(a, a), axes, keepdims));
    case Reduce::SumSquare:
      return sum_over(mul(a, a), axes, keepdims);
    case Reduce::LogSum:
      return log(sum_over(a, axes, keepdims));
    case Reduce::LogSumExp:
      return log_sum_exp_over(a, axes, keepdims);
    case Reduce::Prod:
      break;
  }
  return Tensor();
}

Kernel reduce_kernel(Reduce kind, std::int64_t axes_input_since) {
  return [kind, axes_input_since](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& x = ctx.input(0);
    const auto rank = static_cast<std::int64_t>(x.shape().size());
    const auto axes = reduce_axes(ctx, axes_input_since, rank);
    const bool keepdims = ctx.attr_int("keepdims", 1) != 0;
    // max and the log-sum-exp peak need every reduced slice to be non-empty
    const bool empty = x.tensor.numel() == 0;
    if (is_float_type(x.type) && !(empty && kind != Reduce::Sum && kind != Reduce::Mean)) {
      Tensor out = reduce_lathe(x.tensor, axes, kind, keepdims);
      if (out.defined()) return {make_value(out, x.type)};
    }
    return {make_value(reduce_generic(ctx, x, axes, kind, keepdims), x.type)};
  };
}

// ---------------------------------------------------------------------------------------------
// Softmax and LogSoftmax

Tensor softmax_along(const Tensor& a, std::int64_t axis, bool log_space) {
  return log_space ? log_softmax(a, axis) : softmax(a, axis);
}

Kernel softmax_kernel(bool log_space) {
  return [log_space](const OpContext& ctx) -> std::vector<OnnxValue> {
    const OnnxValue& x = ctx.input(0);
    if (!is_float_type(x.type))
      ctx.fail(fmt::format("input must be a float tensor, got {}", onnx_type_name(x.type)));
    const auto rank = static_cast<std::int64_t>(x.shape().size());
    if (ctx.opset() >= 13) {
      const std::int64_t axis = resolve_axis(ctx, ctx.attr_int("axis", -1), rank);
      return {make_value(softmax_along(x.tensor, axis, log_space), x.type)};
    }
    // Before opset 13 the input is coerced to 2-D [prod(dims < axis), prod(dims >= axis)] and
    // the softmax runs over each row; axis may equal the rank (rows of one element).
    std::int64_t axis = ctx.attr_int("axis", 1);
    if (axis < -rank || axis > rank)
      ctx.fail(fmt::format("axis {} is out of range for rank {}", axis, rank));
    if (axis < 0) axis += rank;
    std::int64_t outer = 1, inner = 1;
    for (std::int64_t d = 0; d < rank; ++d) (d < axis ? outer : inner) *= x.shape()[d];
    const Tensor rows = reshape(x.tensor, {outer, inner});
    return {make_value(reshape(softmax_along(rows, 1, log_space), x.shape()), x.type)};
  };
}

// ---------------------------------------------------------------------------------------------
// NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss

struct LossOptions {
  std::string reduction;
  std::optional<std::int64_t> ignore_index;
};

LossOptions loss_options(const OpContext& ctx) {
  LossOptions o;
  o.reduction = ctx.attr_string("reduction", "mean");
  if (o.reduction != "none" && o.reduction != "sum" && o.reduction != "mean")
    ctx.fail(fmt::format("reduction must be none, sum or mean, got '{}'", o.reduction));
  if (ctx.has_attr("ignore_index")) o.ignore_index = ctx.attr_int("ignore_index", 0);
  return o;
}

// The NLL loss of log-probabilities `input` [N, C, d1, ...] (a float tensor, possibly with
// autograd history) for int targets [N, d1, ...], with optional class weights [C].
Tensor nll_loss_value(const OpContext& ctx, const Tensor& input, OnnxType input_type,
                      const OnnxValue& target, const OnnxValue* weight, const LossOptions& opt) {
  const Shape& shape = input.shape();
  if (shape.size() < 2)
    ctx.fail(fmt::format("input must be [N, C, ...], got shape {}", shape_str(shape)));
  Shape target_shape = shape;
  target_shape.erase(target_shape.begin() + 1);
  if (!is_integer_type(target.type) || target.shape() != target_shape)
    ctx.fail(fmt::format("target must be an integer tensor of shape {}, got {} {}",
                         shape_str(target_shape), onnx_type_name(target.type),
                         shape_str(target.shape())));
  const std::int64_t classes = shape[1];
  if (weight && (weight->type != input_type || weight->shape() != Shape{classes}))
    ctx.fail(fmt::format("weight must be {} of shape [{}], got {} {}", onnx_type_name(input_type),
                         classes, onnx_type_name(weight->type), shape_str(weight->shape())));

  // Class indices with ignored targets sent to class 0, and the 0/1 mask of kept targets.
  const std::int64_t count = target.tensor.numel();
  const std::int64_t* t = target.tensor.data<std::int64_t>();
  std::vector<std::int64_t> index(static_cast<std::size_t>(count));
  std::vector<double> kept(static_cast<std::size_t>(count));
  bool any_ignored = false;
  for (std::int64_t k = 0; k < count; ++k) {
    const bool ignored = opt.ignore_index && t[k] == *opt.ignore_index;
    if (!ignored && (t[k] < 0 || t[k] >= classes))
      ctx.fail(fmt::format("target {} is out of range for {} classes", t[k], classes));
    if (ignored && classes == 0) ctx.fail("input has no classes");
    index[static_cast<std::size_t>(k)] = ignored ? 0 : t[k];
    kept[static_cast<std::size_t>(k)] = ignored ? 0 : 1;
    any_ignored = any_ignored || ignored;
  }

  Shape index_shape = shape;
  index_shape[1] = 1;
  const Tensor picked =
      reshape(gather(input, 1, Tensor::from_indices(index, index_shape)), target_shape);
  Tensor weights;  // per target; undefined where every weight is 1
  if (weight) {
    weights = reshape(index_select(weight->tensor, 0, Tensor::from_indices(index, {count})),
                      target_shape);
    if (any_ignored) weights = mul(weights, Tensor::from_vector(kept, target_shape, input.dtype()));
  } else if (any_ignored) {
    weights = Tensor::from_vector(kept, target_shape, input.dtype());
  }
  const Tensor loss = neg(weights.defined() ? mul(picked, weights) : picked);
  if (opt.reduction == "none") return loss;
  if (opt.reduction == "sum") return sum(loss);
  return weights.defined() ? div(sum(loss), sum(weights)) : mean(loss);
}

// Checks the scores are float and returns the optional weight input (index 2).
const OnnxValue* loss_weight(const OpContext& ctx, const OnnxValue& input) {
  if (!is_float_type(input.type))
    ctx.fail(fmt::format("input must be a float tensor, got {}", onnx_type_name(input.type)));
  return ctx.has_input(2) ? &ctx.input(2) : nullptr;
}

std::vector<OnnxValue> nll_loss_kernel(const OpContext& ctx) {
  const OnnxValue& input = ctx.input(0);
  const OnnxValue* weight = loss_weight(ctx, input);
  const Tensor loss =
      nll_loss_value(ctx, input.tensor, input.type, ctx.input(1), weight, loss_options(ctx));
  return {make_value(loss, input.type)};
}

std::vector<OnnxValue> softmax_cross_entropy_kernel(const OpContext& ctx) {
  const OnnxValue& scores = ctx.input(0);
  const OnnxValue* weight = loss_weight(ctx, scores);
  if (scores.shape().size() < 2)
    ctx.fail(fmt::format("scores must be [N, C, ...], got shape {}", shape_str(scores.shape())));
  const Tensor log_prob = log_softmax(scores.tensor, 1);
  const Tensor loss =
      nll_loss_value(ctx, log_prob, scores.type, ctx.input(1), weight, loss_options(ctx));
  return {make_value(loss, scores.type), make_value(log_prob, scores.type)};
}

// ---------------------------------------------------------------------------------------------
// MeanVarianceNormalization and LpNormalization

// (X - E[X]) / (sqrt(E[X^2] - E[X]^2) + 1e-9) over `axes`, as the ONNX function body.
std::vector<OnnxValue> mvn_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  if (!is_float_type(x.type))
    ctx.fail(fmt::format("input must be a float tensor, got {}", onnx_type_name(x.type)));
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  std::vector<std::int64_t> axes = ctx.attr_ints("axes", {0, 2, 3});
  std::vector<bool> seen(static_cast<std::size_t>(rank), false);
  for (auto& axis : axes) {
    axis = resolve_axis(ctx, axis, rank);
    if (seen[static_cast<std::size_t>(axis)])
      ctx.fail(fmt::format("axis {} is listed twice", axis));
    seen[static_cast<std::size_t>(axis)] = true;
  }
  const Tensor& a = x.tensor;
  const Tensor mu = axes.empty() ? a : mean(a, axes, true);
  const Tensor a_squared = mul(a, a);
  const Tensor mean_of_squares = axes.empty() ? a_squared : mean(a_squared, axes, true);
  const Tensor deviation = sqrt(sub(mean_of_squares, mul(mu, mu)));
  const Tensor y = div(sub(a, mu), add(deviation, Tensor::scalar(1e-9, a.dtype())));
  return {make_value(y, x.type)};
}

std::vector<OnnxValue> lp_normalization_kernel(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  if (!is_float_type(x.type))
    ctx.fail(fmt::format("input must be a float tensor, got {}", onnx_type_name(x.type)));
  const auto rank = static_cast<std::int64_t>(x.shape().size());
  const std::int64_t axis = resolve_axis(ctx, ctx.attr_int("axis", -1), rank);
  const std::int64_t p = ctx.attr_int("p", 2);
  if (p != 1 && p != 2) ctx.fail(fmt::format("p must be 1 or 2, got {}", p));
  const Tensor& a = x.tensor;
  const Tensor norm = p == 1 ? sum(abs(a), {axis}, true) : sqrt(sum(mul(a, a), {axis}, true));
  return {make_value(div(a, norm), x.type)};
}

}  // namespace

void add_reduce_ops(OpTable& table) {
  table["ReduceSum"] = {reduce_kernel(Reduce::Sum, 13), 1};
  table["ReduceMean"] = {reduce_kernel(Reduce::Mean, 18), 1};
  table["ReduceMax"] = {reduce_kernel(Reduce::Max, 18), 1};
  table["ReduceMin"] = {reduce_kernel(Reduce::Min, 18), 1};
  table["ReduceProd"] = {reduce_kernel(Reduce::Prod, 18), 1};
  table["ReduceL1"] = {reduce_kernel(Reduce::L1, 18), 1};
  table["ReduceL2"] = {reduce_kernel(Reduce::L2, 18), 1};
  table["ReduceLogSum"] = {reduce_kernel(Reduce::LogSum, 18), 1};
  table["ReduceLogSumExp"] = {reduce_kernel(Reduce::LogSumExp, 18), 1};
  table["ReduceSumSquare"] = {reduce_kernel(Reduce::SumSquare, 18), 1};
  table["Softmax"] = {softmax_kernel(false), 1};
  table["LogSoftmax"] = {softmax_kernel(true), 1};
  table["NegativeLogLikelihoodLoss"] = {nll_loss_kernel, 12};
  table["SoftmaxCrossEntropyLoss"] = {softmax_cross_entropy_kernel, 12};
  table["MeanVarianceNormalization"] = {mvn_kernel, 9};
  table["LpNormalization"] = {lp_normalization_kernel, 1};
}

}  // namespace lathe::onnx_detail
