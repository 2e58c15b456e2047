// Datasets, splits, preprocessing and the DataLoader's order, batching and prefetch.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <set>
#include <thread>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

std::shared_ptr<TensorDataset> numbered(std::int64_t n) {
  Tensor inputs = reshape(Tensor::arange(n * 2), {n, 2});
  std::vector<std::int64_t> labels(n);
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i;
  return std::make_shared<TensorDataset>(inputs, Tensor::from_indices(labels, {n}));
}

std::vector<std::int64_t> epoch_order(DataLoader& loader, std::int64_t epoch) {
  std::vector<std::int64_t> order;
  loader.start_epoch(epoch);
  while (auto batch = loader.next())
    for (std::int64_t i = 0; i < batch->targets.numel(); ++i) {
      const std::int64_t label = batch->targets.data<std::int64_t>()[i];
      EXPECT_EQ(batch->inputs.at({i, 0}), 2 * label) << "inputs and targets stay paired";
      order.push_back(label);
    }
  return order;
}

// The prefetch thread pays only where the kernel threads of the processes on this host leave a
// hardware thread free for it.
TEST(DataLoader, PrefetchesInTheBackgroundByDefaultOnlyWithACoreToSpare) {
  const int threads = num_threads();
  const auto hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  set_num_threads(hardware);
  EXPECT_FALSE(background_prefetch_pays());
  EXPECT_FALSE(DataLoaderOptions{}.prefetch);
  set_num_threads(1);
  EXPECT_EQ(background_prefetch_pays(), hardware > 1);
  EXPECT_EQ(DataLoaderOptions{}.prefetch, hardware > 1);
  EXPECT_FALSE(background_prefetch_pays(hardware)) << "one process per hardware thread";
  set_num_threads(threads);
}

// Each batch after the first is assembled by an idle pool thread once a split kernel is over (a
// training step's first) or, if none has started it, by next() itself: the batches are the same.
TEST(DataLoader, AssemblesTheNextBatchOnAnIdlePoolThreadWithTheSameBatches) {
  const int threads = num_threads();
  set_num_threads(2);
  const DataLoaderOptions inline_only{
      .batch_size = 10, .seed = 5, .prefetch = false, .prefetch_on_idle_pool_thread = false};
  DataLoaderOptions idle = inline_only;
  idle.prefetch_on_idle_pool_thread = true;
  DataLoader reference(numbered(103), inline_only);
  for (bool kernels_between_batches : {true, false}) {
    DataLoader loader(numbered(103), idle);
    for (std::int64_t epoch : {0, 1}) {
      reference.start_epoch(epoch);
      loader.start_epoch(epoch);
      while (auto expected = reference.next()) {
        const std::optional<Batch> batch = loader.next();
        ASSERT_TRUE(batch.has_value());
        EXPECT_EQ(batch->inputs.to_vector(), expected->inputs.to_vector());
        EXPECT_EQ(batch->targets.to_vector(), expected->targets.to_vector());
        if (kernels_between_batches) parallel_for(2, 1, [](std::int64_t, std::int64_t) {});
      }
      EXPECT_FALSE(loader.next().has_value());
    }
  }
  // Restarting or dropping a loader mid-epoch, its next batch possibly being assembled.
  for (int trial = 0; trial < 20; ++trial) {
    DataLoader loader(numbered(103), idle);
    ASSERT_TRUE(loader.next().has_value());
    parallel_for(2, 1, [](std::int64_t, std::int64_t) {});
    if (trial % 2 == 0) {
      loader.start_epoch(1);
      reference.start_epoch(1);
      EXPECT_EQ(loader.next()->targets.to_vector(), reference.next()->targets.to_vector());
    }
  }
  set_num_threads(threads);
}

TEST(DataLoader, EachEpochIsAPermutationDeterminedBySeedAndEpoch) {
  DataLoader a(numbered(103), {.batch_size = 10, .shuffle = true, .seed = 5, .prefetch = true});
  DataLoader b(numbered(103), {.batch_size = 10, .shuffle = true, .seed = 5, .prefetch = false});
  const auto first = epoch_order(a, 0);
  EXPECT_EQ(std::set<std::int64_t>(first.begin(), first.end()).size(), 103u);
  EXPECT_EQ(first, epoch_order(b, 0)) << "prefetching must not change the order";
  const auto second = epoch_order(a, 1);
  EXPECT_NE(first, second);
  EXPECT_EQ(epoch_order(b, 1), second);
  EXPECT_EQ(epoch_order(a, 0), first) << "epoch 0 again gives epoch 0's order";
  DataLoader c(numbered(103), {.batch_size = 10, .shuffle = true, .seed = 6});
  EXPECT_NE(epoch_order(c, 0), first);
}

TEST(DataLoader, BatchSizesAndDropLast) {
  DataLoader keep(numbered(25), {.batch_size = 10, .shuffle = false});
  EXPECT_EQ(keep.batches_per_epoch(), 3);
  std::vector<std::int64_t> sizes;
  keep.start_epoch(0);
  while (auto batch = keep.next()) sizes.push_back(batch->inputs.size(0));
  EXPECT_EQ(sizes, (std::vector<std::int64_t>{10, 10, 5}));
  DataLoader drop(numbered(25), {.batch_size = 10, .shuffle = false, .drop_last = true});
  EXPECT_EQ(drop.batches_per_epoch(), 2);
  EXPECT_EQ(epoch_order(drop, 0),
            (std::vector<std::int64_t>{0,  1,  2,  3,  4,  5,  6,  7,  8,  9,
                                       10, 11, 12, 13, 14, 15, 16, 17, 18, 19}));
  EXPECT_THROW(DataLoader(numbered(5), {.batch_size = 0}), Error);
}

TEST(DataLoader, StartingAnEpochMidwayRestartsCleanly) {
  DataLoader loader(numbered(50), {.batch_size = 7, .seed = 1});
  loader.start_epoch(3);
  loader.next();
  loader.next();
  const auto full = epoch_order(loader, 3);
  EXPECT_EQ(full.size(), 50u);
}

TEST(Split, DisjointSeededAndSized) {
  const auto data = numbered(100);
  auto [train, held_out] = random_split(*data, 0.2, 9);
  EXPECT_EQ(train.size(), 80);
  EXPECT_EQ(held_out.size(), 20);
  std::set<std::int64_t> seen;
  for (auto* part : {&train, &held_out})
    for (double v : part->targets().to_vector()) seen.insert(static_cast<std::int64_t>(v));
  EXPECT_EQ(seen.size(), 100u);
  auto [again, again_held] = random_split(*data, 0.2, 9);
  EXPECT_EQ(again_held.targets().to_vector(), held_out.targets().to_vector());
  auto [other, other_held] = random_split(*data, 0.2, 10);
  EXPECT_NE(other_held.targets().to_vector(), held_out.targets().to_vector());
  EXPECT_THROW(random_split(*data, 1.0, 0), Error);
}

// ---- ByteImageDataset ----

// n images of [2, 4] bytes cycling through every byte value, labelled 0..n-1.
ByteImages byte_images(std::int64_t n, std::size_t offset = 3) {
  auto storage = std::make_shared<std::vector<unsigned char>>(offset + n * 8, 0xee);
  for (std::int64_t i = 0; i < n * 8; ++i)
    (*storage)[offset + i] = static_cast<unsigned char>((i * 37 + i / 256) % 256);
  return ByteImages{storage, offset, {n, 2, 4}};
}

Tensor labels(std::int64_t n) {
  std::vector<std::int64_t> values(n);
  std::iota(values.begin(), values.end(), 0);
  return Tensor::from_indices(values, {n});
}

// The bytes as read_idx gives them: float32 values 0..255.
Tensor as_floats(const ByteImages& images) {
  const std::int64_t n = images.shape[0] * 8;
  std::vector<double> values(images.storage->begin() + images.offset,
                             images.storage->begin() + images.offset + n);
  return Tensor::from_vector(values, images.shape);
}

std::vector<std::uint32_t> bits(const Tensor& t) {
  std::vector<std::uint32_t> out(t.numel());
  std::memcpy(out.data(), t.data<float>(), out.size() * 4);
  return out;
}

// Batches equal, bit for bit, what the float path gives: the same rows of read_idx's tensor
// through the same preprocessing, for a map shared by all features (a table lookup) and one per
// feature. 5000 rows make a batch large enough to be split among the pool's threads.
TEST(ByteImageDataset, BatchesEqualTheFloatPathBitForBit) {
  const std::int64_t n = 5000;
  const ByteImages images = byte_images(n);
  const Tensor floats = as_floats(images);
  const ByteImageDataset bytes(images, labels(n));
  EXPECT_EQ(bytes.size(), n);
  EXPECT_EQ(bytes.example_shape(), (Shape{2, 4}));
  std::vector<std::int64_t> all(n), some{4999, 0, 17, 17, 256};
  std::iota(all.begin(), all.end(), 0);
  for (const Preprocessing& p :
       {Preprocessing::none(), Preprocessing::normalize(1.0 / 255, 0.5, 0.5),
        Preprocessing::normalize(0.00392156862745098, 0.2860, 0.3530),
        Preprocessing::standardize(floats, 1.0 / 255)}) {
    const ByteImageDataset mapped = bytes.with_preprocessing(p);
    const TensorDataset reference(p.apply(floats), labels(n));
    for (const auto* indices : {&all, &some}) {
      const Batch got = mapped.get_batch(*indices), want = reference.get_batch(*indices);
      EXPECT_EQ(got.inputs.shape(), want.inputs.shape());
      EXPECT_EQ(bits(got.inputs), bits(want.inputs)) << p.to_json().dump();
      EXPECT_EQ(got.targets.to_vector(), want.targets.to_vector());
    }
  }
  EXPECT_EQ(bits(bytes.get_batch(some).inputs),
            bits(TensorDataset(floats, labels(n)).get_batch(some).inputs))
      << "the map is still none";
}

// Subsets and splits hold the rows a TensorDataset's would, and keep the preprocessing.
TEST(ByteImageDataset, SubsetsAndSplitsPickTheRowsATensorDatasetWould) {
  const std::int64_t n = 300;
  const ByteImages images = byte_images(n);
  const Preprocessing p = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
  const ByteImageDataset bytes = ByteImageDataset(images, labels(n)).with_preprocessing(p);
  const TensorDataset floats(p.apply(as_floats(images)), labels(n));
  const auto [train, validation] = random_split(bytes, 0.25, 7);
  const auto [float_train, float_validation] = random_split(floats, 0.25, 7);
  ASSERT_EQ(train.size(), float_train.size());
  ASSERT_EQ(validation.size(), float_validation.size());
  std::vector<std::int64_t> rows(validation.size());
  std::iota(rows.begin(), rows.end(), 0);
  EXPECT_EQ(bits(validation.get_batch(rows).inputs), bits(float_validation.get_batch(rows).inputs));
  EXPECT_EQ(validation.targets().to_vector(), float_validation.targets().to_vector());

  const ByteImageDataset picked = train.subset({5, 0, 5});
  const TensorDataset float_picked = float_train.subset({5, 0, 5});
  EXPECT_EQ(bits(picked.get_batch({0, 1, 2}).inputs),
            bits(float_picked.get_batch({0, 1, 2}).inputs));
  EXPECT_EQ(picked.targets().to_vector(), float_picked.targets().to_vector());
}

TEST(ByteImageDataset, BadArgumentsAreErrors) {
  const ByteImages images = byte_images(10);
  const ByteImageDataset bytes(images, labels(10));
  EXPECT_EQ(testing::error_of([&] {
              bytes.get_batch({0, 10});
            }),
            "dataset: index 10 is out of range for 10 examples");
  EXPECT_EQ(testing::error_of([&] { bytes.subset({-1}); }),
            "dataset: index -1 is out of range for 10 examples");
  EXPECT_EQ(testing::error_of([&] { ByteImageDataset(images, labels(9)); }),
            "dataset: inputs [10,2,4] and targets [9] must have the same first axis");
  ByteImages short_images = images;
  short_images.shape = {11, 2, 4};
  EXPECT_EQ(testing::error_of([&] { ByteImageDataset(short_images, labels(11)); }),
            "byte images: shape [11,2,4] needs 88 bytes from byte 3, the storage has 83");
  short_images.shape = {10, -2, -4};
  EXPECT_EQ(testing::error_of([&] { ByteImageDataset(short_images, labels(10)); }),
            "byte images: shape [10,-2,-4] has a negative size");
  short_images.shape = {10, 1 << 30, 1 << 30, 1 << 30};
  EXPECT_EQ(testing::error_of([&] { ByteImageDataset(short_images, labels(10)); }),
            "byte images: shape [10,1073741824,1073741824,1073741824] has more elements than "
            "int64 counts");
  const Preprocessing three_features =
      Preprocessing::standardize(Tensor::from_vector({1, 2, 3, 4, 5, 7}, {2, 3}));
  EXPECT_EQ(testing::error_of([&] { bytes.with_preprocessing(three_features); }),
            "preprocessing: fitted on 3 features, images [2,4] have 8");
}

TEST(Preprocessing, NormalizeAndStandardizeAndJsonRoundTrip) {
  const Tensor pixels = Tensor::from_vector({0, 255, 51, 102}, {2, 2});
  const Preprocessing normalize = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
  const auto normalized = normalize.apply(pixels).to_vector();
  EXPECT_NEAR(normalized[0], -1, 1e-6);
  EXPECT_NEAR(normalized[1], 1, 1e-6);
  EXPECT_NEAR(normalized[2], -0.6, 1e-6);

  const Tensor features = Tensor::from_vector({1, 10, 3, 10, 5, 10}, {3, 2});
  const Preprocessing standardize = Preprocessing::standardize(features);
  EXPECT_EQ(standardize.mean(), (std::vector<double>{3, 10}));
  EXPECT_NEAR(standardize.std()[0], std::sqrt(8.0 / 3), 1e-12);
  EXPECT_EQ(standardize.std()[1], 1) << "a constant feature keeps std 1";
  const std::vector<double> standardized = standardize.apply(features).to_vector();
  const double s0 = std::sqrt(8.0 / 3);
  const std::vector<double> expected{-2 / s0, 0, 0, 0, 2 / s0, 0};  // each feature its own
  for (std::size_t i = 0; i < expected.size(); ++i)
    EXPECT_NEAR(standardized[i], expected[i], 1e-6) << "element " << i;
  const Preprocessing restored = Preprocessing::from_json(standardize.to_json());
  EXPECT_EQ(restored.apply(features).to_vector(), standardize.apply(features).to_vector());
  EXPECT_THROW(standardize.apply(Tensor::zeros({2, 3})), Error);
  EXPECT_THROW(Preprocessing::from_json({{"scale", 1}, {"mean", {0}}, {"std", {0}}}), Error);
}

// apply(Tensor&&) reuses a float32 tensor that nothing else holds, and never changes one that
// another handle still sees.
TEST(Preprocessing, AppliesInPlaceOnlyToATensorNothingElseHolds) {
  const Preprocessing normalize = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
  Tensor owned = Tensor::from_vector({0, 255, 51, 102}, {2, 2});
  const float* storage = owned.data<float>();
  const Tensor result = normalize.apply(std::move(owned));
  EXPECT_EQ(result.data<float>(), storage) << "no copy";
  EXPECT_EQ(result.to_vector(),
            normalize.apply(Tensor::from_vector({0, 255, 51, 102}, {2, 2})).to_vector());

  Tensor shared = Tensor::from_vector({0, 255, 51, 102}, {2, 2});
  const Tensor other = shared;
  const Tensor copied = normalize.apply(std::move(shared));
  EXPECT_NE(copied.data<float>(), other.data<float>());
  EXPECT_EQ(other.to_vector(), (std::vector<double>{0, 255, 51, 102})) << "the other handle";
  EXPECT_EQ(copied.to_vector(), result.to_vector());

  const Tensor bytes = Tensor::from_vector({0, 255}, {1, 2}, DType::Float64);
  EXPECT_EQ(normalize.apply(Tensor(bytes)).dtype(), DType::Float32);
  EXPECT_EQ(bytes.dtype(), DType::Float64);
}

}  // namespace
}  // namespace lathe
