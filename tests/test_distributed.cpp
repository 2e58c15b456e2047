// The pieces of data-parallel training that run in one process: the autograd engine's
// gradient-ready notifications, GradientReducer's buckets and weighting (in a group of one the
// sum across processes is the identity), and sharded data loading. The multi-process runs are
// tests/mpi_equivalence.sh and tests/mpi_faults.sh.
#include <gtest/gtest.h>

#include <numeric>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

struct RecordingListener : GradientListener {
  std::vector<const TensorImpl*> leaves;
  std::vector<std::vector<double>> grads;  // each leaf's gradient when it was reported
  void gradient_ready(const Tensor& leaf) override {
    leaves.push_back(leaf.impl());
    grads.push_back(leaf.grad().to_vector());
  }
};

TEST(GradientListener, ReportsALeafOnceAfterItsLastContribution) {
  Tensor w = Tensor::from_vector({2, 3}, {2}).requires_grad_();
  Tensor x = Tensor::from_vector({5, 7}, {2});
  Tensor unused = Tensor::ones({1}).requires_grad_();
  RecordingListener listener;
  {
    GradientListenerGuard guard(listener);
    // w feeds two paths: d/dw sum(x*w + w*w) = x + 2w = (9, 13).
    sum(add(mul(x, w), mul(w, w))).backward();
  }
  ASSERT_EQ(listener.leaves.size(), 1u);
  EXPECT_EQ(listener.leaves[0], w.impl());
  EXPECT_EQ(listener.grads[0], (std::vector<double>{9, 13}));
  EXPECT_FALSE(unused.grad().defined());

  // Without a listener installed, backward reports nothing.
  w.zero_grad();
  sum(mul(x, w)).backward();
  EXPECT_EQ(listener.leaves.size(), 1u);
}

TEST(GradientListener, ReportsTheLastLayerBeforeTheFirst) {
  Generator generator(1);
  Linear first(4, 3, true, generator), last(3, 2, true, generator);
  RecordingListener listener;
  {
    GradientListenerGuard guard(listener);
    sum(last(relu(first(Tensor::randn({5, 4}, generator))))).backward();
  }
  ASSERT_EQ(listener.leaves.size(), 4u);
  auto position = [&](const Tensor& t) {
    return std::find(listener.leaves.begin(), listener.leaves.end(), t.impl()) -
           listener.leaves.begin();
  };
  for (const Tensor& late : first.parameters())
    for (const Tensor& early : last.parameters()) EXPECT_LT(position(early), position(late));
}

TEST(GradientReducer, WeightsEachGradientByTheProcessShareAndFillsMissingOnes) {
  ProcessGroup& one = ProcessGroup::world();  // not under mpirun: rank 0 of 1
  ASSERT_FALSE(one.distributed());
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}).requires_grad_();
  Tensor b = Tensor::from_vector({4, 5}, {2}).requires_grad_();
  Tensor c = Tensor::from_vector({6}, {1}).requires_grad_();  // gets no gradient
  GradientReducer reducer(one, {a, b, c}, /*bucket_bytes=*/8);
  EXPECT_EQ(reducer.bucket_count(), 3u);  // 8 bytes: one parameter per bucket
  for (int step = 0; step < 2; ++step) {  // buckets are reusable
    a.zero_grad();
    b.zero_grad();
    reducer.begin_step(0.25);
    {
      GradientListenerGuard guard(reducer);
      // d/da = 2a, d/db = 1
      add(sum(mul(a, a)), sum(b)).backward();
    }
    reducer.finish_step();
    EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{0.5, 1, 1.5}));
    EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{0.25, 0.25}));
    ASSERT_TRUE(c.grad().defined());
    EXPECT_EQ(c.grad().to_vector(), (std::vector<double>{0}));
  }
}

TEST(GradientReducer, BucketsFollowBackwardOrderUpToTheByteLimit) {
  Tensor a = Tensor::zeros({100}).requires_grad_();
  Tensor b = Tensor::zeros({100}).requires_grad_();
  Tensor c = Tensor::zeros({10}).requires_grad_();
  // 440 bytes: c and b (reverse order) fill one bucket, a starts the next.
  EXPECT_EQ(GradientReducer(ProcessGroup::world(), {a, b, c}, 440).bucket_count(), 2u);
  EXPECT_EQ(GradientReducer(ProcessGroup::world(), {a, b, c}, 1 << 20).bucket_count(), 1u);
  EXPECT_EQ(error_of([&] {
              GradientReducer(ProcessGroup::world(), {a, Tensor::zeros({2}, DType::Float64)});
            }),
            "data-parallel training: parameter 1 is float64; only float32 parameters are "
            "supported");
}

std::shared_ptr<TensorDataset> numbered_dataset(std::int64_t n) {
  std::vector<std::int64_t> labels(n);
  std::iota(labels.begin(), labels.end(), 0);
  return std::make_shared<TensorDataset>(reshape(Tensor::arange(n), {n, 1}),
                                         Tensor::from_indices(labels, {n}));
}

std::vector<std::vector<std::int64_t>> batches(std::shared_ptr<TensorDataset> data,
                                               DataLoaderOptions options) {
  DataLoader loader(data, options);
  loader.start_epoch(3);
  std::vector<std::vector<std::int64_t>> out;
  while (auto batch = loader.next()) {
    const auto* labels = batch->targets.data<std::int64_t>();
    out.emplace_back(labels, labels + batch->targets.numel());
  }
  return out;
}

TEST(DataLoaderShards, ShardsSplitEveryBatchOfTheUnshardedOrder) {
  const auto data = numbered_dataset(23);
  DataLoaderOptions whole{8, true, false, 5, false};
  const auto expected = batches(data, whole);  // batches of 8, 8, 7
  for (const std::int64_t count : {2, 3, 5}) {
    std::vector<std::vector<std::int64_t>> joined(expected.size());
    for (std::int64_t shard = 0; shard < count; ++shard) {
      DataLoaderOptions part = whole;
      part.shard_index = shard;
      part.shard_count = count;
      part.prefetch = shard % 2 == 0;
      const auto got = batches(data, part);
      ASSERT_EQ(got.size(), expected.size()) << "every shard sees every batch";
      for (std::size_t b = 0; b < got.size(); ++b) {
        // Near-equal parts: sizes differ by at most one.
        const auto rows = static_cast<std::int64_t>(expected[b].size());
        EXPECT_LE(std::abs(static_cast<std::int64_t>(got[b].size()) * count - rows), count);
        joined[b].insert(joined[b].end(), got[b].begin(), got[b].end());
      }
    }
    EXPECT_EQ(joined, expected) << count << " shards";
  }
}

TEST(DataLoaderShards, GlobalRowsAndEmptyShardsAndBadShards) {
  const auto data = numbered_dataset(9);
  DataLoaderOptions options{4, false, false, 0, false, 2, 3};
  DataLoader loader(data, options);
  EXPECT_EQ(loader.global_batch_rows(0), 4);
  EXPECT_EQ(loader.global_batch_rows(2), 1);
  EXPECT_EQ(loader.global_batch_rows(3), 0);
  const auto got = batches(data, options);  // the last batch's one row goes to shard 2 only
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2], (std::vector<std::int64_t>{8}));
  options.shard_index = 0;
  EXPECT_TRUE(batches(data, options)[2].empty());
  options.shard_index = 3;
  EXPECT_EQ(error_of([&] { DataLoader(data, options); }),
            "data loader: shard 3 of 3 does not exist");
}

}  // namespace
}  // namespace lathe
