// ONNX operators: normalization (BatchNormalization, LayerNormalization, InstanceNormalization,
// LRN), all on lathe's differentiable ops (batch_norm, layer_norm, ...) so gradients reach them.
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"
#include "src/onnx/import/spatial.h"

namespace lathe::onnx_detail {
namespace {

// A per-channel parameter [C] of a normalization node.
void require_channels(const OpContext& ctx, const OnnxValue& x, const OnnxValue& v,
                      const char* what) {
  require_same_storage(ctx, x, v, what);
  if (v.shape() != Shape{x.shape()[1]})
    ctx.fail(fmt::format("{} {} must be [{}] for X {}", what, shape_str(v.shape()), x.shape()[1],
                         shape_str(x.shape())));
}

// `v` [C] shaped to broadcast along axis 1 of a rank-`rank` tensor.
Tensor channel_view(const Tensor& v, std::size_t rank) {
  Shape s(rank, 1);
  s[1] = v.numel();
  return reshape(v, s);
}

std::vector<OnnxValue> batch_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  if (ctx.attr_int("training_mode", 0) != 0)
    ctx.unsupported("training_mode = 1 (batch statistics) is not supported");
  if (ctx.opset() < 9 && ctx.attr_int("spatial", 1) == 0)
    ctx.unsupported("spatial = 0 is not supported");
  if (ctx.opset() < 7 && ctx.attr_int("is_test", 0) == 0 && ctx.output_count() > 1)
    ctx.unsupported("training (is_test = 0) is not supported");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue& bias = ctx.input(2);
  const OnnxValue& mean_v = ctx.input(3);
  const OnnxValue& var_v = ctx.input(4);
  for (const auto& [v, what] :
       {std::pair{&scale, "scale"}, {&bias, "B"}, {&mean_v, "mean"}, {&var_v, "var"}})
    require_channels(ctx, x, *v, what);
  const double eps = ctx.attr_float("epsilon", 1e-5);
  if (eps > 0 && std::isfinite(eps))
    return {make_value(batch_norm(x.tensor, mean_v.tensor, var_v.tensor, scale.tensor, bias.tensor,
                                  false, 0.1, eps),
                       x.type)};
  const std::size_t rank = x.shape().size();
  const DType dt = x.tensor.dtype();
  Tensor inv = pow(add(channel_view(var_v.tensor, rank), Tensor::scalar(eps, dt)), -0.5);
  Tensor y = mul(sub(x.tensor, channel_view(mean_v.tensor, rank)), inv);
  y = add(mul(y, channel_view(scale.tensor, rank)), channel_view(bias.tensor, rank));
  return {make_value(y, x.type)};
}

// Mean and 1 / sqrt(variance + eps) over the axes from `axis` on, kept as size-1 axes.
std::pair<Tensor, Tensor> moments(const Tensor& x, std::size_t axis, double eps) {
  Ints axes;
  for (std::size_t d = axis; d < x.shape().size(); ++d)
    axes.push_back(static_cast<std::int64_t>(d));
  Tensor mu = mean(x, axes, true);
  Tensor centered = sub(x, mu);
  Tensor var = mean(mul(centered, centered), axes, true);
  return {mu, pow(add(var, Tensor::scalar(eps, x.dtype())), -0.5)};
}

std::vector<OnnxValue> layer_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Shape& s = x.shape();
  const auto rank = static_cast<std::int64_t>(s.size());
  if (rank == 0) ctx.fail("X must have at least one axis");
  const auto axis = static_cast<std::size_t>(resolve_axis(ctx, ctx.attr_int("axis", -1), rank));
  const double eps = ctx.attr_float("epsilon", 1e-5);
  const Shape normalized = tail(s, axis);
  for (const OnnxValue* v : {&scale, bias}) {
    if (!v) continue;
    require_same_storage(ctx, x, *v, "Scale and B");
    if (broadcast_shapes(ctx, {s, v->shape()}) != s)
      ctx.fail(fmt::format("Scale/B {} does not broadcast to X {}", shape_str(v->shape()),
                           shape_str(s)));
  }
  const std::int64_t inner = shape_numel(normalized),
                     outer = shape_numel(s) / std::max<std::int64_t>(inner, 1);
  const bool stats = wants_output(ctx, 1) || wants_output(ctx, 2);
  const bool exact_params = scale.shape() == normalized && (!bias || bias->shape() == normalized);
  if (!stats && exact_params && eps > 0 && std::isfinite(eps) && inner > 0) {
    Tensor y = layer_norm(reshape(x.tensor, {outer, inner}), reshape(scale.tensor, {inner}),
                          bias ? reshape(bias->tensor, {inner}) : Tensor(), eps);
    return {make_value(reshape(y, s), x.type)};
  }
  auto [mu, inv] = moments(x.tensor, axis, eps);
  Tensor y = mul(mul(sub(x.tensor, mu), inv), scale.tensor);
  if (bias) y = add(y, bias->tensor);
  return {make_value(y, x.type), make_value(mu, x.type), make_value(inv, x.type)};
}

std::vector<OnnxValue> instance_norm_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 3, "X");
  const OnnxValue& scale = ctx.input(1);
  const OnnxValue& bias = ctx.input(2);
  require_channels(ctx, x, scale, "scale");
  require_channels(ctx, x, bias, "B");
  const Shape& s = x.shape();
  const std::size_t rank = s.size();
  const double eps = ctx.attr_float("epsilon", 1e-5);
  const std::int64_t area = shape_numel(tail(s, 2));
  Tensor y;
  if (eps > 0 && std::isfinite(eps) && area > 0) {
    y = reshape(layer_norm(reshape(x.tensor, {s[0] * s[1], area}), Tensor(), Tensor(), eps), s);
  } else {
    auto [mu, inv] = moments(x.tensor, 2, eps);
    y = mul(sub(x.tensor, mu), inv);
  }
  y = add(mul(y, channel_view(scale.tensor, rank)), channel_view(bias.tensor, rank));
  return {make_value(y, x.type)};
}

std::vector<OnnxValue> lrn_op(const OpContext& ctx) {
  const OnnxValue& x = ctx.input(0);
  require_float(ctx, x, "X");
  require_rank(ctx, x, 2, "X");
  const std::int64_t size = ctx.attr_int("size", 0);
  const std::int64_t c = x.shape()[1];
  if (size < 1 || size > kMaxWindowValue)
    ctx.fail(fmt::format("size must be a positive number, got {}", size));
  const double alpha = ctx.attr_float("alpha", 1e-4), beta = ctx.attr_float("beta", 0.75);
  const double bias = ctx.attr_float("bias", 1.0);
  const std::int64_t before = (size - 1) / 2, after = size - 1 - before;
  const DType dt = x.tensor.dtype();
  // The sum of squares over channels [c - before, c + after], by shifted slices of a padded copy.
  Tensor padded =
      pad_with(ctx, mul(x.tensor, x.tensor), 1, std::min(before, c), std::min(after, c));
  const std::int64_t lead = std::min(before, c);
  Tensor sum_sq;
  for (std::int64_t shift = -before; shift <= after; ++shift) {
    if (shift <= -c || shift >= c) continue;  // entirely in the padding
    Tensor part = slice(padded, 1, lead + shift, lead + shift + c);
    sum_sq = sum_sq.defined() ? add(sum_sq, part) : part;
  }
  Tensor denom = add(mul(sum_sq, Tensor::scalar(alpha / static_cast<double>(size), dt)),
                     Tensor::scalar(bias, dt));
  return {make_value(div(x.tensor, pow(denom, beta)), x.type)};
}

}  // namespace

void add_normalization_ops(OpTable& table) {
  table["BatchNormalization"] = {batch_norm_op, 1};
  table["LayerNormalization"] = {layer_norm_op, 17};
  table["InstanceNormalization"] = {instance_norm_op, 1};
  table["LRN"] = {lrn_op, 1};
}

}  // namespace lathe::onnx_detail
