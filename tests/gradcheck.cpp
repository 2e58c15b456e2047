#include "tests/gradcheck.h"

#include <fmt/format.h>

#include <cmath>

namespace lathe::testing {
namespace {

double weighted_sum(const Tensor& output, const Tensor& weights) {
  const double* y = output.data<double>();
  const double* w = weights.data<double>();
  double total = 0;
  for (std::int64_t i = 0; i < output.numel(); ++i) total += y[i] * w[i];
  return total;
}

}  // namespace

std::set<Op> ops_in_graph(const Tensor& output) {
  std::set<Op> ops;
  std::vector<const Node*> pending;
  std::set<const Node*> seen;
  if (output.grad_fn()) pending.push_back(output.grad_fn().get());
  while (!pending.empty()) {
    const Node* node = pending.back();
    pending.pop_back();
    if (!seen.insert(node).second) continue;
    ops.insert(node->op);
    for (const Tensor& input : node->inputs)
      if (input.defined() && input.grad_fn()) pending.push_back(input.grad_fn().get());
  }
  return ops;
}

GradcheckResult gradcheck(const OpFunction& f, std::vector<Tensor> inputs,
                          const GradcheckOptions& options) {
  GradcheckResult result;
  for (Tensor& input : inputs) {
    if (input.dtype() != DType::Float64) throw Error("gradcheck: inputs must be float64");
    input = input.detach();
    input.requires_grad_();
  }
  const Tensor output = f(inputs);
  result.ops_in_graph = ops_in_graph(output);
  Generator generator(1234);
  const Tensor weights = Tensor::randn(output.shape(), generator, DType::Float64);
  output.backward(weights);

  int reported = 0;
  for (std::size_t which = 0; which < inputs.size(); ++which) {
    Tensor& input = inputs[which];
    const Tensor analytical = input.grad();
    if (!analytical.defined()) {
      result.passed = false;
      result.failures += fmt::format("input {}: no gradient reached it\n", which);
      continue;
    }
    double* x = input.data<double>();
    for (std::int64_t i = 0; i < input.numel(); ++i) {
      const double original = x[i];
      double plus, minus;
      {
        NoGradGuard no_grad;
        x[i] = original + options.step;
        plus = weighted_sum(f(inputs), weights);
        x[i] = original - options.step;
        minus = weighted_sum(f(inputs), weights);
        x[i] = original;
      }
      const double numerical = (plus - minus) / (2 * options.step);
      const double got = analytical.data<double>()[i];
      const double allowed =
          options.absolute_tolerance + options.relative_tolerance * std::abs(numerical);
      if (!(std::abs(got - numerical) <= allowed)) {
        result.passed = false;
        if (reported++ < 5)
          result.failures += fmt::format(
              "input {} element {}: analytical {:.10g}, numerical "
              "{:.10g}\n",
              which, i, got, numerical);
      }
    }
  }
  return result;
}

}  // namespace lathe::testing
