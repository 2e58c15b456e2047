// OpenBLAS's thread count is process-wide; SingleThreadedBlas holds on different threads share it.
#include <gtest/gtest.h>

#include <future>
#include <optional>
#include <thread>

#include "lathe/error.h"
#include "src/tensor/blas.h"

extern "C" int openblas_get_num_threads(void);

namespace lathe::detail {
namespace {

// Restores the process's BLAS thread count when a test ends, pass or fail.
class BlasThreadsRestorer {
 public:
  ~BlasThreadsRestorer() { set_blas_threads(saved_); }

 private:
  int saved_ = blas_threads();
};

TEST(BlasThreads, OverlappingHoldsOnTwoThreadsKeepOpenBlasSingleThreadedUntilTheLastEnds) {
  BlasThreadsRestorer restorer;
  set_blas_threads(2);
  std::optional<SingleThreadedBlas> first(std::in_place);
  std::promise<void> second_held, release_second;
  std::thread other([&] {
    SingleThreadedBlas second;
    second_held.set_value();
    release_second.get_future().wait();
  });
  second_held.get_future().wait();
  first.reset();  // the first hold ends while the second is live
  EXPECT_EQ(openblas_get_num_threads(), 1);
  release_second.set_value();
  other.join();
  EXPECT_EQ(openblas_get_num_threads(), 2);
  EXPECT_EQ(blas_threads(), 2);
}

TEST(BlasThreads, ACountSetDuringAHoldTakesEffectWhenTheHoldEnds) {
  BlasThreadsRestorer restorer;
  set_blas_threads(2);
  {
    SingleThreadedBlas hold;
    set_blas_threads(3);
    EXPECT_EQ(openblas_get_num_threads(), 1);
    EXPECT_EQ(blas_threads(), 3);
  }
  EXPECT_EQ(openblas_get_num_threads(), 3);
}

TEST(BlasThreads, RejectsACountBelowOne) {
  BlasThreadsRestorer restorer;
  EXPECT_THROW(set_blas_threads(0), Error);
}

}  // namespace
}  // namespace lathe::detail
