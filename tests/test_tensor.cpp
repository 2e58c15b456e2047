// Tensor basics: factories, element access, conversion, printing, seeded random numbers and
// initializers, and the kernel thread pool.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <numeric>
#include <thread>
#include <vector>

#include "lathe/lathe.h"

namespace lathe {
namespace {

TEST(Tensor, FactoriesShapesAndAccess) {
  Tensor t = Tensor::full({2, 3}, 1.5);
  EXPECT_EQ(t.dtype(), DType::Float32);
  EXPECT_EQ(t.shape(), (Shape{2, 3}));
  EXPECT_EQ(t.dim(), 2);
  EXPECT_EQ(t.size(-1), 3);
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.at({1, 2}), 1.5);
  t.set({1, 2}, -4);
  EXPECT_EQ(t.data<float>()[5], -4.0f);
  EXPECT_EQ(Tensor::scalar(3, DType::Float64).item(), 3);
  EXPECT_EQ(Tensor::zeros({0, 4}).numel(), 0);
  EXPECT_EQ(Tensor::arange(4, DType::Int64).to_vector(), (std::vector<double>{0, 1, 2, 3}));
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(t.data<float>()) % 64, 0u)
      << "storage is 64-byte aligned";
}

TEST(Tensor, CloneAndConversionOwnTheirStorage) {
  Tensor a = Tensor::from_vector({1.25, -2}, {2}, DType::Float64);
  Tensor b = a.clone();
  Tensor c = a.to(DType::Float32);
  Tensor d = a.to(DType::Int64);
  a.fill_(0);
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1.25, -2}));
  EXPECT_EQ(c.to_vector(), (std::vector<double>{1.25, -2}));
  EXPECT_EQ(d.to_vector(), (std::vector<double>{1, -2}));  // truncation toward zero
}

TEST(Tensor, PrintsLikePyTorch) {
  const Tensor m = Tensor::from_vector({1, 2, 3, 4}, {2, 2});
  EXPECT_EQ(m.to_string(),
            "tensor([[1.0000, 2.0000],\n        [3.0000, 4.0000]], shape=[2,2], dtype=float32)");
  EXPECT_EQ(Tensor::from_indices({7}, {}).to_string(), "tensor(7, shape=[], dtype=int64)");
  Tensor w = Tensor::zeros({2});
  w.requires_grad_();
  EXPECT_EQ(w.to_string(),
            "tensor([0.0000, 0.0000], shape=[2], dtype=float32, requires_grad=true)");
  EXPECT_NE((w * 2.0).to_string().find("grad_fn=mul"), std::string::npos);
  // Large tensors are summarized around their edges.
  const std::string big = Tensor::arange(2000).to_string();
  EXPECT_NE(big.find("2.0000, ..., 1997.0000"), std::string::npos) << big;
  EXPECT_LT(big.size(), 200u);
}

TEST(Random, SeededGeneratorIsDeterministic) {
  Generator a(99), b(99), c(100);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.next_u64(), b.next_u64());
  EXPECT_NE(Generator(99).next_u64(), c.next_u64());
  // Fixed values pin the algorithm (xoshiro256** seeded by splitmix64) across platforms.
  Generator pinned(0);
  EXPECT_EQ(pinned.next_u64(), 0x99ec5f36cb75f2b4ULL);
  // Saving and restoring the state replays the same stream, including Box-Muller's spare.
  Generator g(5);
  g.normal();
  const auto state = g.state();
  const double next = g.normal(), after = g.normal();
  g.set_state(state);
  EXPECT_EQ(g.normal(), next);
  EXPECT_EQ(g.normal(), after);
}

TEST(Random, DistributionsHaveTheRightMoments) {
  Generator g(7);
  const Tensor u = Tensor::rand({100000}, g, DType::Float64);
  const Tensor n = Tensor::randn({100000}, g, DType::Float64);
  const auto moments = [](const Tensor& t) {
    const auto v = t.to_vector();
    const double m = std::accumulate(v.begin(), v.end(), 0.0) / v.size();
    double var = 0;
    for (double x : v) var += (x - m) * (x - m);
    return std::pair{m, var / v.size()};
  };
  const auto [um, uv] = moments(u);
  EXPECT_NEAR(um, 0.5, 0.01);
  EXPECT_NEAR(uv, 1.0 / 12, 0.002);
  const auto [nm, nv] = moments(n);
  EXPECT_NEAR(nm, 0.0, 0.02);
  EXPECT_NEAR(nv, 1.0, 0.02);
  for (double x : u.to_vector()) ASSERT_TRUE(x >= 0 && x < 1);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 30000; ++i) ++counts[g.below(3)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 500);
}

TEST(Random, InitializersFollowFanInAndFanOut) {
  Generator g(11);
  Tensor w = Tensor::empty({256, 512});
  EXPECT_EQ(fan_in(w.shape()), 512);
  EXPECT_EQ(fan_out(w.shape()), 256);
  EXPECT_EQ(fan_in({8, 3, 5, 5}), 75);
  kaiming_uniform_(w, g);
  const double bound = std::sqrt(2.0) * std::sqrt(3.0 / 512);
  double max_abs = 0, sq = 0;
  for (double x : w.to_vector()) {
    max_abs = std::max(max_abs, std::abs(x));
    sq += x * x;
  }
  EXPECT_LE(max_abs, bound);
  EXPECT_GT(max_abs, 0.99 * bound);
  EXPECT_NEAR(sq / w.numel(), bound * bound / 3, 0.02 * bound * bound / 3);
  xavier_normal_(w, g);
  sq = 0;
  for (double x : w.to_vector()) sq += x * x;
  EXPECT_NEAR(sq / w.numel(), 2.0 / (512 + 256), 0.03 * 2.0 / (512 + 256));
  Tensor vector = Tensor::empty({4});
  EXPECT_THROW(kaiming_normal_(vector, g), Error);
}

TEST(Parallel, CoversEveryIndexOnceAndRethrows) {
  for (std::int64_t n : {1, 7, 1000, 100003}) {
    std::vector<std::atomic<int>> hits(n);
    parallel_for(n, 16, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) hits[i]++;
    });
    for (std::int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
  }
  EXPECT_THROW(parallel_for(1000, 1,
                            [](std::int64_t begin, std::int64_t) {
                              if (begin > 0) throw Error("boom");
                            }),
               Error);
  // A nested call runs inline instead of deadlocking on the pool.
  std::atomic<std::int64_t> total{0};
  parallel_for(100, 1, [&](std::int64_t begin, std::int64_t end) {
    parallel_for(end - begin, 1, [&](std::int64_t b, std::int64_t e) { total += e - b; });
  });
  EXPECT_EQ(total.load(), 100);
  set_num_threads(1);
  EXPECT_EQ(num_threads(), 1);
  set_num_threads(2);
  EXPECT_EQ(num_threads(), 2);
  EXPECT_THROW(set_num_threads(0), Error);
}

// The caller runs the first chunk of every parallel_for, so a split's first part stays on one
// core from call to call (its data in that core's cache); the rest still run once each.
TEST(Parallel, TheCallerRunsTheFirstChunk) {
  const int threads = num_threads();
  set_num_threads(3);
  for (int call = 0; call < 200; ++call) {
    std::thread::id first_chunk_thread;
    std::vector<std::atomic<int>> hits(300);
    parallel_for(300, 1, [&](std::int64_t begin, std::int64_t end) {
      if (begin == 0) first_chunk_thread = std::this_thread::get_id();
      for (std::int64_t i = begin; i < end; ++i) hits[i]++;
    });
    ASSERT_EQ(first_chunk_thread, std::this_thread::get_id()) << "call " << call;
    for (auto& hit : hits) ASSERT_EQ(hit.load(), 1);
  }
  set_num_threads(threads);
}

// In a SerialRegion the calling thread runs whole ranges and products itself; other threads
// and the thread after the region still split.
TEST(Parallel, ASerialRegionKeepsItsThreadsWorkToItself) {
  const int threads = num_threads();
  set_num_threads(3);
  auto calls_on_this_thread_only = [] {
    int calls = 0;
    bool all_here = true;
    parallel_for(300, 1, [&](std::int64_t begin, std::int64_t end) {
      ++calls;
      all_here = all_here && begin == 0 && end == 300;
    });
    return calls == 1 && all_here;
  };
  EXPECT_FALSE(in_parallel_region());
  {
    SerialRegion serial;
    EXPECT_TRUE(in_parallel_region());
    { SerialRegion nested; }
    EXPECT_TRUE(in_parallel_region()) << "a nested region ended the outer one";
    EXPECT_TRUE(calls_on_this_thread_only());
    bool other_thread_splits = false;
    std::thread([&] { other_thread_splits = !calls_on_this_thread_only(); }).join();
    EXPECT_TRUE(other_thread_splits);
  }
  EXPECT_FALSE(in_parallel_region());
  EXPECT_FALSE(calls_on_this_thread_only());
  set_num_threads(threads);
}

// Waits up to a second for `task` to finish without the caller's help.
bool finishes_on_its_own(const IdleTask& task) {
  for (int i = 0; i < 1000 && !task.done(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return task.done();
}

void split_kernel() {
  parallel_for(2, 1, [](std::int64_t, std::int64_t) {});
}

// An idle task waits for the next parallel_for (so it cannot take that kernel's worker), then a
// worker runs it without the caller.
TEST(Parallel, AnIdleTaskRunsOnAWorkerAfterTheNextParallelFor) {
  const int threads = num_threads();
  set_num_threads(2);
  std::thread::id ran_on;
  IdleTask task([&] { ran_on = std::this_thread::get_id(); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(task.done()) << "started before a parallel_for was over";
  split_kernel();
  ASSERT_TRUE(finishes_on_its_own(task));
  task.finish();
  EXPECT_NE(ran_on, std::this_thread::get_id());
  set_num_threads(threads);
}

TEST(Parallel, AnIdleTaskNoWorkerStartedRunsInFinish) {
  const int threads = num_threads();
  for (int pool : {1, 2}) {
    set_num_threads(pool);
    std::thread::id ran_on;
    IdleTask task([&] { ran_on = std::this_thread::get_id(); });
    EXPECT_FALSE(task.done());
    task.finish();
    EXPECT_TRUE(task.done());
    EXPECT_EQ(ran_on, std::this_thread::get_id()) << pool << " threads";
  }
  set_num_threads(threads);
}

TEST(Parallel, FinishRethrowsAnIdleTasksErrorFromEitherThread) {
  const int threads = num_threads();
  set_num_threads(2);
  IdleTask on_caller([] { throw Error("assembly failed"); });
  EXPECT_THROW(on_caller.finish(), Error);
  IdleTask on_worker([] { throw Error("assembly failed"); });
  split_kernel();
  ASSERT_TRUE(finishes_on_its_own(on_worker));
  EXPECT_THROW(on_worker.finish(), Error);
  set_num_threads(threads);
}

TEST(Parallel, AnIdleTaskDroppedBeforeItStartsNeverRuns) {
  const int threads = num_threads();
  set_num_threads(2);
  std::atomic<bool> ran{false};
  {
    IdleTask dropped([&] { ran = true; });
  }
  split_kernel();
  IdleTask later([] {});  // runs after the dropped one would have
  split_kernel();
  ASSERT_TRUE(finishes_on_its_own(later));
  EXPECT_FALSE(ran.load());
  set_num_threads(threads);
}

TEST(Parallel, LargeKernelsMatchSerialResults) {
  Generator g(3);
  const Tensor a = Tensor::randn({300000}, g, DType::Float64);
  set_num_threads(1);
  const Tensor serial = tanh(a) * a;
  set_num_threads(2);
  const Tensor threaded = tanh(a) * a;
  EXPECT_EQ(serial.to_vector(), threaded.to_vector());
}

TEST(Storage, ReusesFreedBlocksInsteadOfAllocating) {
  const auto before = Storage::allocation_count();
  { Tensor a = Tensor::zeros({777, 13}); }  // a size no other test uses
  EXPECT_EQ(Storage::allocation_count(), before + 1);
  Tensor b = Tensor::zeros({777, 13});  // the freed block comes back
  Tensor view = reshape(b, {13, 777});  // a view: no storage at all
  EXPECT_EQ(Storage::allocation_count(), before + 1);
  Tensor c = Tensor::zeros({777, 13});  // b still holds the cached one
  EXPECT_EQ(Storage::allocation_count(), before + 2);
}

}  // namespace
}  // namespace lathe
