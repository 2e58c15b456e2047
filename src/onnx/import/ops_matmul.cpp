// ONNX operators: matrix products (MatMul, Gemm, Einsum). Float MatMul and Gemm run on lathe's
// differentiable matmul and linear; integer types and Einsum run generic loops.
#include <algorithm>
#include <cctype>
#include <string>
#include <type_traits>
#include <vector>

#include "lathe/ops.h"
#include "src/onnx/import/kernels.h"
#include "src/onnx/import/spatial.h"

namespace lathe::onnx_detail {
namespace {

// The product of 64-bit integers wrapping around (no signed overflow).
template <class T>
T times(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::uint64_t>(a) * static_cast<std::uint64_t>(b));
  else
    return a * b;
}
template <class T>
T plus(T a, T b) {
  if constexpr (std::is_integral_v<T>)
    return static_cast<T>(static_cast<std::uint64_t>(a) + static_cast<std::uint64_t>(b));
  else
    return a + b;
}

// `x` broadcast to `shape` through an addition, which keeps the gradient.
Tensor expand_to(const OpContext& ctx, const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  ctx.check_size(shape, onnx_type_of(x.dtype()));
  return add(x, Tensor::zeros(shape, x.dtype()));
}

// ---------------------------------------------------------------------------------------------
// MatMul and Gemm

template <class T>
void matmul_loop(const T* a, const T* b, T* y, const Shape& batch, const Shape& a_batch,
                 const Shape& b_batch, std::int64_t m, std::int64_t k, std::int64_t n) {
  const auto sa = broadcast_strides(a_batch, batch), sb = broadcast_strides(b_batch, batch);
  for_each_broadcast(batch, {sa, sb}, [&](std::int64_t at, const std::int64_t* off) {
    const T* ap = a + off[0] * m * k;
    const T* bp = b + off[1] * k * n;
    T* yp = y + at * m * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        T acc = 0;
        for (std::int64_t q = 0; q < k; ++q) acc = plus(acc, times(ap[i * k + q], bp[q * n + j]));
        yp[i * n + j] = acc;
      }
  });
}

// A [..., M, K] times B [..., K, N] with lathe's matmul (batch axes broadcast).
Tensor matmul_float(const OpContext& ctx, const Tensor& a, const Tensor& b, const Shape& as,
                    const Shape& bs, const Shape& batch) {
  const std::int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const std::int64_t count = shape_numel(batch);
  Shape a_full = batch, b_full = batch;
  a_full.insert(a_full.end(), {m, k});
  b_full.insert(b_full.end(), {k, n});
  Tensor a2 = reshape(a, as), b2 = reshape(b, bs);
  if (shape_numel(a_batch) != count) a2 = expand_to(ctx, a2, a_full);
  if (shape_numel(b_batch) == 1)  // one matrix for the whole batch: a single GEMM
    return matmul(reshape(a2, {count * m, k}), reshape(b2, {k, n}));
  if (shape_numel(b_batch) != count) b2 = expand_to(ctx, b2, b_full);
  return matmul(reshape(a2, {count, m, k}), reshape(b2, {count, k, n}));
}

std::vector<OnnxValue> matmul_op(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  if (a.type != b.type)
    ctx.fail(fmt::format("operands are {} and {}", onnx_type_name(a.type), onnx_type_name(b.type)));
  if (a.shape().empty() || b.shape().empty())
    ctx.fail(fmt::format("operands {} and {} must have at least one axis", shape_str(a.shape()),
                         shape_str(b.shape())));
  Shape as = a.shape(), bs = b.shape();
  const bool a_vector = as.size() == 1, b_vector = bs.size() == 1;
  if (a_vector) as.insert(as.begin(), 1);
  if (b_vector) bs.push_back(1);
  const std::int64_t m = as[as.size() - 2], k = as.back(), n = bs.back();
  if (bs[bs.size() - 2] != k)
    ctx.fail(fmt::format("shapes {} and {} do not multiply: inner dimensions {} and {}",
                         shape_str(a.shape()), shape_str(b.shape()), k, bs[bs.size() - 2]));
  const Shape a_batch(as.begin(), as.end() - 2), b_batch(bs.begin(), bs.end() - 2);
  const Shape batch = broadcast_shapes(ctx, {a_batch, b_batch});
  Shape out = batch;
  out.insert(out.end(), {m, n});
  ctx.check_size(out, a.type);
  Shape result = batch;
  if (!a_vector) result.push_back(m);
  if (!b_vector) result.push_back(n);

  if (is_float_storage(a) && m > 0 && n > 0 && k > 0 && shape_numel(batch) > 0)
    return {
        make_value(reshape(matmul_float(ctx, a.tensor, b.tensor, as, bs, batch), result), a.type)};
  Tensor y = new_tensor(ctx, out, a.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    matmul_loop<T>(a.tensor.data<T>(), b.tensor.data<T>(), y.data<T>(), batch, a_batch, b_batch, m,
                   k, n);
  });
  return {make_value(reshape(y, result), a.type)};
}

template <class T>
void gemm_loop(const OnnxValue& a, const OnnxValue& b, const OnnxValue* c, bool ta, bool tb,
               double alpha, double beta, std::int64_t m, std::int64_t k, std::int64_t n, T* y) {
  const T* ap = a.tensor.data<T>();
  const T* bp = b.tensor.data<T>();
  const std::int64_t lda = a.shape()[1], ldb = b.shape()[1];
  std::vector<std::int64_t> cs;
  if (c) cs = broadcast_strides(c->shape(), {m, n});
  for (std::int64_t i = 0; i < m; ++i)
    for (std::int64_t j = 0; j < n; ++j) {
      T acc = 0;
      for (std::int64_t q = 0; q < k; ++q)
        acc = plus(acc,
                   times(ap[ta ? q * lda + i : i * lda + q], bp[tb ? j * ldb + q : q * ldb + j]));
      if (alpha != 1) acc = static_cast<T>(alpha * static_cast<double>(acc));
      if (c) {
        T cv = c->tensor.data<T>()[i * cs[0] + j * cs[1]];
        if (beta != 1) cv = static_cast<T>(beta * static_cast<double>(cv));
        acc = plus(acc, cv);
      }
      y[i * n + j] = acc;
    }
}

std::vector<OnnxValue> gemm_op(const OpContext& ctx) {
  const OnnxValue& a = ctx.input(0);
  const OnnxValue& b = ctx.input(1);
  const OnnxValue* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (a.shape().size() != 2 || b.shape().size() != 2)
    ctx.fail(
        fmt::format("A {} and B {} must be matrices", shape_str(a.shape()), shape_str(b.shape())));
  if (a.type != b.type || (c && c->type != a.type))
    ctx.fail("A, B and C must have the same element type");
  const bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  const double alpha = ctx.attr_float("alpha", 1.0), beta = ctx.attr_float("beta", 1.0);
  const std::int64_t m = a.shape()[ta ? 1 : 0], k = a.shape()[ta ? 0 : 1];
  const std::int64_t kb = b.shape()[tb ? 1 : 0], n = b.shape()[tb ? 0 : 1];
  if (k != kb)
    ctx.fail(fmt::format("A {} and B {} do not multiply (transA={}, transB={})",
                         shape_str(a.shape()), shape_str(b.shape()), ta, tb));
  if (c && broadcast_shapes(ctx, {c->shape(), {m, n}}) != Shape{m, n})
    ctx.fail(fmt::format("C {} does not broadcast to [{},{}]", shape_str(c->shape()), m, n));
  ctx.check_size({m, n}, a.type);

  if (is_float_storage(a) && m > 0 && n > 0 && k > 0) {
    const DType dt = a.tensor.dtype();
    if (!ta && alpha == 1 && (!c || (beta == 1 && c->shape() == Shape{n})))
      return {make_value(linear(a.tensor, b.tensor, c ? c->tensor : Tensor(),
                                tb ? WeightLayout::OutIn : WeightLayout::InOut),
                         a.type)};
    Tensor y = matmul(a.tensor, b.tensor, ta, tb);
    if (alpha != 1) y = mul(y, Tensor::scalar(alpha, dt));
    if (c) y = add(y, beta == 1 ? c->tensor : mul(c->tensor, Tensor::scalar(beta, dt)));
    return {make_value(y, a.type)};
  }
  Tensor y = new_tensor(ctx, {m, n}, a.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    gemm_loop<T>(a, b, c, ta, tb, alpha, beta, m, k, n, y.data<T>());
  });
  return {make_value(y, a.type)};
}

// ---------------------------------------------------------------------------------------------
// Einsum

struct EinsumSpec {
  std::vector<std::vector<int>> inputs;  // label ids per operand axis
  std::vector<int> output;
  std::vector<std::int64_t> sizes;  // per label id
};

// Label ids: 0-51 for letters, 52 + k for the k-th ellipsis axis (aligned to the right).
int letter_id(char ch) {
  return ch >= 'a' ? ch - 'a' : 26 + (ch - 'A');
}

std::vector<int> parse_term(const OpContext& ctx, const std::string& term, std::int64_t rank,
                            int ellipsis_rank, bool is_output) {
  std::vector<int> labels;
  std::size_t dots = term.find("...");
  const auto letters = static_cast<std::int64_t>(term.size() - (dots == std::string::npos ? 0 : 3));
  for (std::size_t i = 0; i < term.size(); ++i) {
    if (i == dots) {
      const std::int64_t e = is_output ? ellipsis_rank : rank - letters;
      if (e < 0 || e > ellipsis_rank)
        ctx.fail(fmt::format("term '{}' does not fit an operand of rank {}", term, rank));
      for (std::int64_t k = ellipsis_rank - e; k < ellipsis_rank; ++k)
        labels.push_back(52 + static_cast<int>(k));
      i += 2;
      continue;
    }
    const char ch = term[i];
    if (!std::isalpha(static_cast<unsigned char>(ch)))
      ctx.fail(fmt::format("equation term '{}' has an invalid character '{}'", term, ch));
    labels.push_back(letter_id(ch));
  }
  if (!is_output && static_cast<std::int64_t>(labels.size()) != rank)
    ctx.fail(fmt::format("term '{}' has {} labels for an operand of rank {}", term, labels.size(),
                         rank));
  return labels;
}

std::vector<std::string> split_terms(const std::string& s) {
  std::vector<std::string> terms(1);
  for (const char ch : s) {
    if (ch == ',')
      terms.emplace_back();
    else
      terms.back() += ch;
  }
  return terms;
}

EinsumSpec parse_einsum(const OpContext& ctx) {
  std::string eq;
  for (const char ch : ctx.attr_string("equation", ""))
    if (!std::isspace(static_cast<unsigned char>(ch))) eq += ch;
  const std::size_t arrow = eq.find("->");
  const auto terms = split_terms(eq.substr(0, arrow));
  if (terms.size() != ctx.input_count())
    ctx.fail(fmt::format("equation '{}' has {} operands, the node {}", eq, terms.size(),
                         ctx.input_count()));
  int ellipsis_rank = 0;
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const std::size_t dots = terms[i].find("...");
    if (dots == std::string::npos) continue;
    if (terms[i].find("...", dots + 3) != std::string::npos)
      ctx.fail(fmt::format("term '{}' has two ellipses", terms[i]));
    const auto rank = static_cast<std::int64_t>(ctx.input(i).shape().size());
    ellipsis_rank =
        std::max(ellipsis_rank, static_cast<int>(std::max<std::int64_t>(
                                    0, rank - static_cast<std::int64_t>(terms[i].size() - 3))));
  }
  EinsumSpec spec;
  spec.sizes.assign(52 + static_cast<std::size_t>(ellipsis_rank), -1);
  std::vector<int> counts(spec.sizes.size(), 0);
  for (std::size_t i = 0; i < terms.size(); ++i) {
    const Shape& shape = ctx.input(i).shape();
    spec.inputs.push_back(
        parse_term(ctx, terms[i], static_cast<std::int64_t>(shape.size()), ellipsis_rank, false));
    for (std::size_t a = 0; a < shape.size(); ++a) {
      const int id = spec.inputs.back()[a];
      auto& size = spec.sizes[static_cast<std::size_t>(id)];
      ++counts[static_cast<std::size_t>(id)];
      if (size == -1 || (size == 1 && id >= 52)) {
        size = shape[a];
      } else if (size != shape[a] && !(id >= 52 && shape[a] == 1)) {
        ctx.fail(fmt::format("equation '{}': a label has sizes {} and {}", eq, size, shape[a]));
      }
    }
  }
  if (arrow != std::string::npos) {
    const std::string out = eq.substr(arrow + 2);
    if (out.find("...") == std::string::npos && ellipsis_rank > 0 &&
        std::any_of(spec.sizes.begin() + 52, spec.sizes.end(), [](auto s) { return s > 1; }))
      ctx.fail("the output term drops the ellipsis axes");
    spec.output = parse_term(ctx, out, 0, ellipsis_rank, true);
    for (const int id : spec.output)
      if (spec.sizes[static_cast<std::size_t>(id)] < 0)
        ctx.fail(fmt::format("output term '{}' has a label no operand has", out));
  } else {
    // Implicit output: the ellipsis axes, then the labels used once, in alphabetical order.
    for (int k = 0; k < ellipsis_rank; ++k) spec.output.push_back(52 + k);
    for (int ch = 0; ch < 26; ++ch)
      for (const int id : {ch + 26, ch})  // 'A' < 'a' in ASCII order
        if (counts[static_cast<std::size_t>(id)] == 1) spec.output.push_back(id);
  }
  for (std::size_t a = 0; a < spec.output.size(); ++a)
    if (std::count(spec.output.begin(), spec.output.end(), spec.output[a]) > 1)
      ctx.fail("the output term repeats a label");
  for (auto& size : spec.sizes) size = std::max<std::int64_t>(size, 0);
  return spec;
}

std::vector<OnnxValue> einsum_op(const OpContext& ctx) {
  if (ctx.input_count() == 0) ctx.fail("Einsum needs at least one operand");
  const OnnxValue& first = ctx.input(0);
  for (std::size_t i = 1; i < ctx.input_count(); ++i)
    if (ctx.input(i).type != first.type) ctx.fail("operands have different element types");
  const EinsumSpec spec = parse_einsum(ctx);
  // Iterate over every label: the output's first, then the summed ones.
  std::vector<int> order = spec.output;
  for (const auto& labels : spec.inputs)
    for (const int id : labels)
      if (std::find(order.begin(), order.end(), id) == order.end()) order.push_back(id);
  Shape all, out;
  for (const int id : order) all.push_back(spec.sizes[static_cast<std::size_t>(id)]);
  for (const int id : spec.output) out.push_back(spec.sizes[static_cast<std::size_t>(id)]);
  std::vector<std::vector<std::int64_t>> strides;
  for (std::size_t i = 0; i < spec.inputs.size(); ++i) {
    const Shape& shape = ctx.input(i).shape();
    const auto own = contiguous_strides(shape);
    std::vector<std::int64_t> s(order.size(), 0);
    for (std::size_t a = 0; a < shape.size(); ++a) {
      if (shape[a] == 1) continue;  // broadcast (or size 1 anyway)
      const auto at = std::find(order.begin(), order.end(), spec.inputs[i][a]) - order.begin();
      s[static_cast<std::size_t>(at)] += own[a];  // a repeated label walks the diagonal
    }
    strides.push_back(s);
  }
  auto out_strides = contiguous_strides(out);
  out_strides.resize(order.size(), 0);
  strides.push_back(out_strides);
  Tensor y = new_tensor(ctx, out, first.type);
  visit_storage(y, [&](auto tag) {
    using T = decltype(tag);
    T* yp = y.data<T>();
    std::fill_n(yp, y.numel(), T(0));
    std::vector<const T*> xs;
    for (std::size_t i = 0; i < spec.inputs.size(); ++i)
      xs.push_back(ctx.input(i).tensor.data<T>());
    const std::size_t n = xs.size();
    for_each_broadcast(all, strides, [&](std::int64_t, const std::int64_t* off) {
      T product = 1;
      for (std::size_t i = 0; i < n; ++i) product = times(product, xs[i][off[i]]);
      yp[off[n]] = plus(yp[off[n]], product);
    });
  });
  return {make_value(y, first.type)};
}

}  // namespace

void add_matmul_ops(OpTable& table) {
  table["MatMul"] = {matmul_op, 1};
  table["Gemm"] = {gemm_op, 1};
  table["Einsum"] = {einsum_op, 12};
}

}  // namespace lathe::onnx_detail
