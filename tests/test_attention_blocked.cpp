// Attention whose memory grows linearly with the context (src/ops/attention_blocked.h): the same
// output and gradients as the form that keeps the probabilities, within float rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "lathe/lathe.h"
#include "src/ops/attention_blocked.h"

namespace lathe {
namespace {

struct Result {
  std::vector<double> output, gradient;
};

// The output of `attend` on qkv and d(sum(output * weights))/d(qkv).
template <class Attend>
Result run(const Tensor& qkv_values, const Tensor& weights, Attend attend) {
  Tensor qkv = qkv_values.detach().clone();
  qkv.requires_grad_();
  const Tensor out = attend(qkv);
  sum(mul(out, weights)).backward();
  return {out.to_vector(), qkv.grad().to_vector()};
}

double largest_difference(const std::vector<double>& a, const std::vector<double>& b) {
  double most = 0;
  for (std::size_t i = 0; i < a.size(); ++i) most = std::max(most, std::abs(a[i] - b[i]));
  return most;
}

void expect_same(DType dtype, std::int64_t time, std::int64_t heads, std::int64_t block,
                 double tolerance) {
  Generator g(7);
  const Tensor qkv = Tensor::randn({2, time, 3 * 8}, g, dtype);
  const Tensor weights = Tensor::randn({2, time, 8}, g, dtype);
  const Result kept = run(qkv, weights, [&](const Tensor& x) {
    return detail::causal_attention_keeping_probabilities(x, heads);
  });
  const Result blocked = run(qkv, weights, [&](const Tensor& x) {
    return detail::causal_attention_blocked(x, heads, block);
  });
  ASSERT_EQ(kept.output.size(), blocked.output.size());
  EXPECT_LE(largest_difference(kept.output, blocked.output), tolerance) << "output";
  EXPECT_LE(largest_difference(kept.gradient, blocked.gradient), tolerance) << "gradient";
}

TEST(BlockedAttention, MatchesTheProbabilitiesFormInFloat64) {
  // Blocks that divide the context, blocks that do not, one block, blocks of one position.
  for (const std::int64_t block : {1, 4, 7, 37, 64})
    expect_same(DType::Float64, 37, 2, block, 1e-12);
}

TEST(BlockedAttention, MatchesTheProbabilitiesFormInFloat32) {
  for (const std::int64_t block : {8, 16, 24}) expect_same(DType::Float32, 64, 4, block, 2e-5);
}

TEST(BlockedAttention, LongContextsRunBlockedAndAgreeWithOtherBlockSizes) {
  // causal_attention itself runs blocks of kAttentionBlock beyond that many positions.
  Generator g(11);
  const std::int64_t time = 3 * detail::kAttentionBlock + 5;
  const Tensor qkv = Tensor::randn({1, time, 3 * 4}, g, DType::Float64);
  const Tensor weights = Tensor::randn({1, time, 4}, g, DType::Float64);
  const Result fused = run(qkv, weights, [](const Tensor& x) { return causal_attention(x, 2); });
  const Result whole = run(qkv, weights, [&](const Tensor& x) {
    return detail::causal_attention_blocked(x, 2, time);  // one block: a plain masked softmax
  });
  EXPECT_LE(largest_difference(fused.output, whole.output), 1e-12);
  EXPECT_LE(largest_difference(fused.gradient, whole.gradient), 1e-12);
}

TEST(BlockedAttention, MatchesTheProbabilitiesFormBeyondOneBlock) {
  expect_same(DType::Float64, 2 * detail::kAttentionBlock + 9, 2, detail::kAttentionBlock, 1e-12);
}

TEST(BlockedAttention, RefusesABlockBelowOne) {
  Generator g(1);
  const Tensor qkv = Tensor::randn({1, 3, 6}, g);
  EXPECT_THROW(detail::causal_attention_blocked(qkv, 1, 0), Error);
}

}  // namespace
}  // namespace lathe
