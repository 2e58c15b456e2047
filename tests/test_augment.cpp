// Image augmentation: random crop with padding, horizontal flip, random erasing; seeded per
// (seed, epoch, position) and applied by the DataLoader identically with and without prefetch.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <sstream>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

// `count` images of `shape` ([C,]H,W) whose pixels are all distinct: 100 + their flat index.
Tensor distinct_images(std::int64_t count, const Shape& shape) {
  Shape full{count};
  full.insert(full.end(), shape.begin(), shape.end());
  Tensor images = Tensor::empty(full);
  float* x = images.data<float>();
  for (std::int64_t i = 0; i < images.numel(); ++i) x[i] = 100.0f + static_cast<float>(i);
  return images;
}

// Example i of a batch, as a flat vector.
std::vector<double> example(const Tensor& batch, std::int64_t i) {
  const std::vector<double> all = batch.to_vector();
  const auto size = static_cast<std::int64_t>(all.size()) / batch.size(0);
  return {all.begin() + i * size, all.begin() + (i + 1) * size};
}

Augmentation everything() {
  return {.crop_padding = 2, .crop_fill = -1, .horizontal_flip = 0.5, .erasing = 0.5};
}

std::shared_ptr<TensorDataset> labelled_images(std::int64_t n) {
  std::vector<std::int64_t> labels(n);
  for (std::int64_t i = 0; i < n; ++i) labels[i] = i;
  return std::make_shared<TensorDataset>(distinct_images(n, {1, 8, 8}),
                                         Tensor::from_indices(labels, {n}));
}

std::vector<Batch> epoch_batches(DataLoader& loader, std::int64_t epoch) {
  std::vector<Batch> batches;
  loader.start_epoch(epoch);
  while (auto batch = loader.next()) batches.push_back(*batch);
  return batches;
}

void expect_same_batches(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].inputs.shape(), b[i].inputs.shape()) << "batch " << i;
    EXPECT_EQ(a[i].inputs.to_vector(), b[i].inputs.to_vector()) << "batch " << i;
    EXPECT_EQ(a[i].targets.to_vector(), b[i].targets.to_vector()) << "batch " << i;
  }
}

TEST(Augment, DrawsDependOnlyOnSeedEpochAndPosition) {
  const Tensor images = distinct_images(16, {2, 6, 6});
  const Tensor once = augment_images(images, everything(), 7, 3, 40);
  EXPECT_EQ(once.shape(), images.shape());
  EXPECT_EQ(once.to_vector(), augment_images(images, everything(), 7, 3, 40).to_vector());
  EXPECT_NE(once.to_vector(), images.to_vector());
  EXPECT_NE(once.to_vector(), augment_images(images, everything(), 7, 4, 40).to_vector())
      << "another epoch draws anew";
  EXPECT_NE(once.to_vector(), augment_images(images, everything(), 8, 3, 40).to_vector())
      << "another seed draws anew";
  // Example i depends on its own position only, not on the batch it is in.
  const Tensor tail = augment_images(slice(images, 0, 5, 16), everything(), 7, 3, 45);
  for (std::int64_t i = 5; i < 16; ++i) EXPECT_EQ(example(once, i), example(tail, i - 5));
}

TEST(Augment, PrefetchOnOrOffAndShardingGiveTheSameBatches) {
  const auto data = labelled_images(45);
  const DataLoaderOptions options{
      .batch_size = 8, .seed = 3, .prefetch = true, .augmentation = everything()};
  DataLoader prefetching(data, options);
  DataLoaderOptions inline_options = options;
  inline_options.prefetch = false;
  DataLoader direct(data, inline_options);
  for (std::int64_t epoch : {0, 1}) {
    SCOPED_TRACE(epoch);
    const auto batches = epoch_batches(prefetching, epoch);
    expect_same_batches(batches, epoch_batches(direct, epoch));
    // Two shards of each batch, put together, are the unsharded batch.
    DataLoaderOptions shard = options;
    shard.shard_count = 2;
    DataLoader first(data, shard);
    shard.shard_index = 1;
    DataLoader second(data, shard);
    const auto a = epoch_batches(first, epoch), b = epoch_batches(second, epoch);
    ASSERT_EQ(a.size(), batches.size());
    for (std::size_t i = 0; i < a.size(); ++i)
      EXPECT_EQ(concat({a[i].inputs, b[i].inputs}, 0).to_vector(), batches[i].inputs.to_vector());
  }
}

TEST(Augment, EachEpochDiffersAndAResumedLoaderReplaysIt) {
  const auto data = labelled_images(30);
  const DataLoaderOptions options{.batch_size = 8, .seed = 3, .augmentation = everything()};
  DataLoader loader(data, options);
  const auto epoch0 = epoch_batches(loader, 0);
  const auto epoch1 = epoch_batches(loader, 1);
  DataLoader resumed(data, options);
  expect_same_batches(epoch_batches(resumed, 1), epoch1);
  expect_same_batches(epoch_batches(resumed, 0), epoch0);
  // Without shuffling the examples are in the same places, so only augmentation can differ.
  DataLoaderOptions ordered = options;
  ordered.shuffle = false;
  DataLoader fixed(data, ordered);
  EXPECT_NE(epoch_batches(fixed, 0)[0].inputs.to_vector(),
            epoch_batches(fixed, 1)[0].inputs.to_vector());
}

TEST(Augment, CropWithPaddingOnlyShiftsTheContent) {
  // The 9 windows of a 3x3 image padded by 1 with -1, written out by hand (top, left = 0..2).
  const std::vector<std::vector<double>> windows = {
      {-1, -1, -1, -1, 1, 2, -1, 4, 5}, {-1, -1, -1, 1, 2, 3, 4, 5, 6},
      {-1, -1, -1, 2, 3, -1, 5, 6, -1}, {-1, 1, 2, -1, 4, 5, -1, 7, 8},
      {1, 2, 3, 4, 5, 6, 7, 8, 9},      {2, 3, -1, 5, 6, -1, 8, 9, -1},
      {-1, 4, 5, -1, 7, 8, -1, -1, -1}, {4, 5, 6, 7, 8, 9, -1, -1, -1},
      {5, 6, -1, 8, 9, -1, -1, -1, -1}};
  const std::int64_t n = 200;
  std::vector<double> tiled;
  for (std::int64_t i = 0; i < n; ++i)
    for (int v = 1; v <= 9; ++v) tiled.push_back(v);
  const Tensor images = Tensor::from_vector(tiled, {n, 3, 3});
  const Tensor out = augment_images(images, {.crop_padding = 1, .crop_fill = -1}, 1, 0, 0);
  ASSERT_EQ(out.shape(), (Shape{n, 3, 3}));
  std::set<std::size_t> seen;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto found = std::find(windows.begin(), windows.end(), example(out, i));
    ASSERT_NE(found, windows.end()) << "example " << i << " is not a shifted copy";
    seen.insert(static_cast<std::size_t>(found - windows.begin()));
  }
  EXPECT_EQ(seen.size(), 9u) << "every offset is drawn";

  // Channels share the offset; a crop smaller than the image needs no padding.
  const Tensor two = augment_images(distinct_images(50, {2, 4, 4}), {.crop_padding = 1}, 2, 0, 0);
  for (std::int64_t i = 0; i < 50; ++i) {
    const auto pixels = example(two, i);
    for (std::size_t k = 0; k < 16; ++k)
      if (pixels[k] != 0) {
        EXPECT_EQ(pixels[k + 16], pixels[k] + 16) << "example " << i;
      }
  }
  const Tensor small = augment_images(Tensor::from_vector(tiled, {n, 3, 3}),
                                      {.crop_height = 2, .crop_width = 2}, 3, 0, 0);
  ASSERT_EQ(small.shape(), (Shape{n, 2, 2}));
  const std::vector<std::vector<double>> corners = {
      {1, 2, 4, 5}, {2, 3, 5, 6}, {4, 5, 7, 8}, {5, 6, 8, 9}};
  for (std::int64_t i = 0; i < n; ++i)
    EXPECT_NE(std::find(corners.begin(), corners.end(), example(small, i)), corners.end());
}

TEST(Augment, FlipIsAnExactMirror) {
  const Tensor images = Tensor::from_vector({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, {2, 2, 3});
  expect_same_batches(
      {{augment_images(images, {.horizontal_flip = 1}, 0, 0, 0), Tensor::from_indices({0}, {1})}},
      {{Tensor::from_vector({3, 2, 1, 6, 5, 4, 9, 8, 7, 12, 11, 10}, {2, 2, 3}),
        Tensor::from_indices({0}, {1})}});
  const std::int64_t n = 400;
  const Tensor many = distinct_images(n, {3, 5});
  const Tensor half = augment_images(many, {.horizontal_flip = 0.5}, 4, 0, 0);
  const Tensor all = augment_images(many, {.horizontal_flip = 1}, 4, 0, 0);
  int flipped = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto original = example(many, i), mirrored = example(all, i), out = example(half, i);
    for (int row = 0; row < 3; ++row)
      for (int col = 0; col < 5; ++col)
        EXPECT_EQ(mirrored[row * 5 + col], original[row * 5 + 4 - col]);
    EXPECT_TRUE(out == original || out == mirrored) << "example " << i;
    flipped += out == mirrored;
  }
  EXPECT_GT(flipped, 160);
  EXPECT_LT(flipped, 240);
}

TEST(Augment, ErasingFillsOneRectangleInEveryChannel) {
  const std::int64_t n = 100, h = 10, w = 12;
  const Tensor images = distinct_images(n, {2, h, w});
  const Tensor out = augment_images(images, {.erasing = 1, .erasing_value = 7}, 5, 0, 0);
  ASSERT_EQ(out.shape(), images.shape());
  for (std::int64_t i = 0; i < n; ++i) {
    const auto before = example(images, i), after = example(out, i);
    std::int64_t top = h, bottom = -1, left = w, right = -1, erased = 0;
    for (std::int64_t y = 0; y < h; ++y)
      for (std::int64_t x = 0; x < w; ++x) {
        const auto at = static_cast<std::size_t>(y * w + x);
        const bool changed = after[at] != before[at];
        EXPECT_EQ(changed, after[at + h * w] != before[at + h * w]) << "channels differ";
        if (!changed) continue;
        EXPECT_EQ(after[at], 7);
        ++erased;
        top = std::min(top, y), bottom = std::max(bottom, y);
        left = std::min(left, x), right = std::max(right, x);
      }
    ASSERT_GT(erased, 0) << "p = 1 erases every image (example " << i << ")";
    EXPECT_EQ(erased, (bottom - top + 1) * (right - left + 1)) << "one filled rectangle";
    EXPECT_LT(bottom - top + 1, h);
    EXPECT_LT(right - left + 1, w);
    // Area scale in [0.02, 0.33] of 120 pixels, up to the rounding of each side.
    EXPECT_LE(erased, 0.33 * h * w * 1.6) << "example " << i;
  }
  const Tensor some = augment_images(images, {.erasing = 0.3}, 5, 0, 0);
  int untouched = 0;
  for (std::int64_t i = 0; i < n; ++i) untouched += example(some, i) == example(images, i);
  EXPECT_GT(untouched, 55);
  EXPECT_LT(untouched, 85);
}

TEST(Augment, ProbabilityZeroIsTheIdentity) {
  const Tensor images = distinct_images(20, {6, 6});
  const Augmentation none{.horizontal_flip = 0, .erasing = 0};
  EXPECT_FALSE(none.enabled());
  EXPECT_EQ(augment_images(images, none, 1, 2, 3).to_vector(), images.to_vector());
  DataLoader plain(labelled_images(20), {.batch_size = 6, .seed = 2});
  DataLoader off(labelled_images(20), {.batch_size = 6, .seed = 2, .augmentation = none});
  expect_same_batches(epoch_batches(plain, 0), epoch_batches(off, 0));
}

TEST(Augment, LabelsStayWithTheirImages) {
  const auto data = labelled_images(30);
  DataLoader plain(data, {.batch_size = 7, .seed = 9});
  DataLoader mirrored(data, {.batch_size = 7, .seed = 9, .augmentation = {.horizontal_flip = 1}});
  const auto a = epoch_batches(plain, 2), b = epoch_batches(mirrored, 2);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].targets.to_vector(), b[i].targets.to_vector());
    EXPECT_EQ(a[i].targets.dtype(), DType::Int64);
    std::vector<double> rows_reversed = a[i].inputs.to_vector();
    for (auto row = rows_reversed.begin(); row != rows_reversed.end(); row += 8)
      std::reverse(row, row + 8);
    EXPECT_EQ(rows_reversed, b[i].inputs.to_vector());
  }
}

TEST(Augment, BadOptionsAndShapesAreClearErrors) {
  const auto data = labelled_images(10);
  const auto loader_error = [&](Augmentation a) {
    return error_of([&] { DataLoader(data, {.augmentation = a}); });
  };
  EXPECT_EQ(loader_error({.horizontal_flip = 1.5}),
            "horizontal flip: probability must be in [0, 1], got 1.5");
  EXPECT_EQ(loader_error({.erasing = -0.25}),
            "random erasing: probability must be in [0, 1], got -0.25");
  EXPECT_EQ(loader_error({.crop_padding = -2}),
            "random crop: padding must be in [0, 2147483647], got -2");
  EXPECT_EQ(loader_error({.erasing = 0.5, .erasing_scale_min = 0.5, .erasing_scale_max = 0.1}),
            "random erasing: scale must satisfy 0 <= min <= max <= 1, got (0.5, 0.1)");
  EXPECT_EQ(loader_error({.erasing = 0.5, .erasing_ratio_min = 0}),
            "random erasing: ratio must satisfy 0 < min <= max, got (0, 3.3)");
  EXPECT_EQ(error_of([&] {
              augment_images(distinct_images(2, {5, 5}),
                             {.crop_padding = 1, .crop_height = 8, .crop_width = 7}, 0, 0, 0);
            }),
            "random crop: crop 8x7 is bigger than the padded image 7x7 (5x5 with padding 1)");
  // A batch that is not images fails when it is assembled, naming the transforms.
  DataLoader flat(std::make_shared<TensorDataset>(Tensor::zeros({4, 784}),
                                                  Tensor::from_indices({0, 1, 2, 3}, {4})),
                  {.batch_size = 2, .augmentation = {.crop_padding = 2, .horizontal_flip = 0.5}});
  EXPECT_EQ(error_of([&] { flat.next(); }),
            "random crop, horizontal flip: expected images [N,H,W] or [N,C,H,W], got [2,784]");
  EXPECT_EQ(error_of([&] {
              augment_images(Tensor::from_indices({1, 2, 3, 4}, {1, 2, 2}), {.horizontal_flip = 1},
                             0, 0, 0);
            }),
            "horizontal flip: dtype int64 is not supported; expected float32 or float64");
  // Evaluation never augments.
  Generator init(0);
  const auto model = make_sequential(
      nlohmann::json::parse(R"([{"type":"flatten"},{"type":"linear","in":64,"out":10}])"), init);
  DataLoader augmenting(data, {.augmentation = {.horizontal_flip = 0.5}});
  EXPECT_EQ(error_of([&] {
              evaluate(*model, loss_for("cross_entropy"), Task::Classification, augmenting);
            }),
            "evaluate: the data loader augments its batches; evaluate on one without");
}

// Writes `count` random 8x8 uint8 images and labels 0..2 as IDX files `name`-images/-labels.
void write_idx_pair(const testing::TempDir& dir, const std::string& name, std::uint32_t count,
                    std::uint64_t seed) {
  const auto header = [](unsigned char rank, std::vector<std::uint32_t> dims) {
    std::string bytes{0, 0, 0x08, static_cast<char>(rank)};
    for (std::uint32_t d : dims)
      for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<char>(d >> shift));
    return bytes;
  };
  Generator g(seed);
  std::string images = header(3, {count, 8, 8}), labels = header(1, {count});
  for (std::uint32_t i = 0; i < count * 64; ++i) images.push_back(static_cast<char>(g.below(256)));
  for (std::uint32_t i = 0; i < count; ++i) labels.push_back(static_cast<char>(g.below(3)));
  dir.write(name + "-images", images);
  dir.write(name + "-labels", labels);
}

// `lathe train` with [augment] and label smoothing: a resumed run replays the uninterrupted one
// exactly, and a checkpoint is refused by a run that augments differently.
TEST(Augment, ConfiguredTrainingResumesExactlyAndRefusesOtherSettings) {
  testing::TempDir dir;
  write_idx_pair(dir, "train", 90, 1);
  write_idx_pair(dir, "test", 20, 2);
  const auto config_text = dir.write("config.toml", R"([data]
format = "idx"
train_images = "train-images"
train_labels = "train-labels"
test_images = "test-images"
test_labels = "test-labels"
validation_fraction = 0.2

[preprocess]
scale = 0.00392156862745098
normalize_mean = 0.5
normalize_std = 0.5

[augment]
random_crop_padding = 1
horizontal_flip = 0.5
random_erasing = 0.5

[model]
layers = [{ type = "flatten" }, { type = "linear", in = 64, out = 3 }]

[loss]
label_smoothing = 0.1

[optimizer]
lr = 0.01

[trainer]
batch_size = 16
log_every = 0
progress = "never"
)");
  const auto run = [&](const std::string& output, std::int64_t epochs, bool resume,
                       std::vector<std::string> extra = {}) {
    extra.push_back("trainer.output_dir=" + dir / output);
    extra.push_back("trainer.epochs=" + std::to_string(epochs));
    std::ostringstream log;
    return run_training(load_run_config(config_text, extra), resume, log);
  };
  const RunResult straight = run("straight", 3, false);
  run("resumed", 2, false);
  const RunResult resumed = run("resumed", 3, true);
  ASSERT_EQ(resumed.history.size(), 3u);
  for (std::size_t e = 0; e < 3; ++e) {
    EXPECT_EQ(straight.history[e].train_loss, resumed.history[e].train_loss) << "epoch " << e;
    EXPECT_EQ(straight.history[e].validation.loss, resumed.history[e].validation.loss);
  }
  EXPECT_EQ(straight.test.loss, resumed.test.loss);
  const RunResult unaugmented = run(
      "plain", 1, false,
      {"augment.horizontal_flip=0", "augment.random_erasing=0", "augment.random_crop_padding=0"});
  EXPECT_NE(unaugmented.history[0].train_loss, straight.history[0].train_loss);
  for (const char* change :
       {"augment.horizontal_flip=0.25", "augment.fill=0.0", "loss.label_smoothing=0.2"})
    EXPECT_NE(error_of([&] {
                run("resumed", 4, true, {change});
              }).find("cannot resume: the checkpoint was written by a different"),
              std::string::npos)
        << change;
}

}  // namespace
}  // namespace lathe
