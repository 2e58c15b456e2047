// Datasets (TensorDataset, ByteImageDataset) and the seeded train/validation split.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/parallel.h"
#include "lathe/table.h"

namespace lathe {
namespace {

// Copies rows `indices` (first-axis slices) of `source` into a new tensor.
Tensor gather_rows(const Tensor& source, const std::vector<std::int64_t>& indices) {
  Shape shape = source.shape();
  shape[0] = static_cast<std::int64_t>(indices.size());
  Tensor out = Tensor::empty(shape, source.dtype());
  const std::size_t row_bytes =
      static_cast<std::size_t>(source.numel() / std::max<std::int64_t>(source.size(0), 1)) *
      dtype_size(source.dtype());
  const char* from = static_cast<const char*>(source.impl()->storage->data());
  char* to = static_cast<char*>(out.impl()->storage->data());
  // Rows scattered over a large data set are read at DRAM latency: a seed MLP batch (64 rows of
  // 3 KB out of 188 MB) took 20-28 us on one thread, 13-16 us on two (medians over 3 epochs).
  // Parts of at least 64 KB go to the pool.
  const auto rows = static_cast<std::int64_t>(indices.size());
  const auto grain = static_cast<std::int64_t>(
      std::max<std::size_t>(1, (64 << 10) / std::max<std::size_t>(row_bytes, 1)));
  parallel_for(rows, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i)
      std::memcpy(to + i * row_bytes, from + indices[i] * row_bytes, row_bytes);
  });
  return out;
}

void check_indices(const std::vector<std::int64_t>& indices, std::int64_t size) {
  for (auto i : indices)
    if (i < 0 || i >= size)
      throw Error(fmt::format("dataset: index {} is out of range for {} examples", i, size));
}

void check_same_length(const Shape& inputs, const Tensor& targets) {
  if (inputs.empty() || targets.dim() < 1 || inputs[0] != targets.size(0))
    throw Error(fmt::format("dataset: inputs {} and targets {} must have the same first axis",
                            shape_str(inputs), shape_str(targets.shape())));
}

// Elements of `shape`, or an error naming it where a size is negative or the count overflows.
std::int64_t checked_count(const Shape& shape) {
  std::int64_t count = 1;
  for (const std::int64_t d : shape) {
    if (d < 0)
      throw Error(fmt::format("byte images: shape {} has a negative size", shape_str(shape)));
    if (__builtin_mul_overflow(count, d, &count))
      throw Error(fmt::format("byte images: shape {} has more elements than int64 counts",
                              shape_str(shape)));
  }
  return count;
}

}  // namespace

Shape Dataset::example_shape() const {
  if (size() == 0) throw Error("dataset: no examples to read an example's shape from");
  Shape shape = get_batch({0}).inputs.shape();
  shape.erase(shape.begin());
  return shape;
}

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  check_same_length(inputs_.shape(), targets_);
}

std::int64_t TensorDataset::size() const {
  return inputs_.size(0);
}

Batch TensorDataset::get_batch(const std::vector<std::int64_t>& indices) const {
  check_indices(indices, size());
  return {gather_rows(inputs_, indices), gather_rows(targets_, indices)};
}

Shape TensorDataset::example_shape() const {
  return Shape(inputs_.shape().begin() + 1, inputs_.shape().end());
}

TensorDataset TensorDataset::subset(const std::vector<std::int64_t>& indices) const {
  const Batch rows = get_batch(indices);
  return TensorDataset(rows.inputs, rows.targets);
}

ByteImageDataset::ByteImageDataset(ByteImages images, Tensor targets)
    : images_(std::move(images)), targets_(std::move(targets)) {
  check_same_length(images_.shape, targets_);
  const auto count = static_cast<std::uint64_t>(checked_count(images_.shape));
  const std::size_t held = images_.storage ? images_.storage->size() : 0;
  if (held < images_.offset || held - images_.offset < count)
    throw Error(fmt::format("byte images: shape {} needs {} bytes from byte {}, the storage has {}",
                            shape_str(images_.shape), count, images_.offset, held));
  rows_.resize(static_cast<std::size_t>(images_.shape[0]));
  std::iota(rows_.begin(), rows_.end(), 0);
  map_ = Preprocessing::none().affine();
}

std::int64_t ByteImageDataset::size() const {
  return static_cast<std::int64_t>(rows_.size());
}

Shape ByteImageDataset::example_shape() const {
  return Shape(images_.shape.begin() + 1, images_.shape.end());
}

Batch ByteImageDataset::get_batch(const std::vector<std::int64_t>& indices) const {
  check_indices(indices, size());
  Shape shape = images_.shape;
  shape[0] = static_cast<std::int64_t>(indices.size());
  Tensor inputs = Tensor::empty(shape);
  const std::int64_t features = checked_count(example_shape());
  const unsigned char* const bytes = images_.storage->data() + images_.offset;
  float* const out = inputs.data<float>();
  // As gather_rows: rows scattered over the data set are read at DRAM latency, so parts of at
  // least 64 KB of output go to the pool.
  const std::int64_t grain =
      std::max<std::int64_t>(1, (64 << 10) / std::max<std::int64_t>(features * 4, 1));
  const std::vector<double>& a = map_.a;
  const std::vector<double>& b = map_.b;
  const bool shared = a.size() == 1;
  parallel_for(shape[0], grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const unsigned char* from = bytes + rows_[static_cast<std::size_t>(indices[i])] * features;
      float* to = out + i * features;
      if (shared)
        for (std::int64_t f = 0; f < features; ++f)
          to[f] = Preprocessing::Affine::map(from[f], a[0], b[0]);
      else
        for (std::int64_t f = 0; f < features; ++f)
          to[f] = Preprocessing::Affine::map(from[f], a[f], b[f]);
    }
  });
  return {std::move(inputs), gather_rows(targets_, indices)};
}

ByteImageDataset ByteImageDataset::subset(const std::vector<std::int64_t>& indices) const {
  check_indices(indices, size());
  ByteImageDataset out = *this;
  out.rows_.resize(indices.size());
  for (std::size_t i = 0; i < indices.size(); ++i)
    out.rows_[i] = rows_[static_cast<std::size_t>(indices[i])];
  out.targets_ = gather_rows(targets_, indices);
  return out;
}

ByteImageDataset ByteImageDataset::with_preprocessing(const Preprocessing& preprocessing) const {
  Preprocessing::Affine map = preprocessing.affine();
  const std::int64_t features = checked_count(example_shape());
  if (map.a.size() != 1 && static_cast<std::int64_t>(map.a.size()) != features)
    throw Error(fmt::format("preprocessing: fitted on {} features, images {} have {}", map.a.size(),
                            shape_str(example_shape()), features));
  ByteImageDataset out = *this;
  out.map_ = std::move(map);
  return out;
}

namespace {

// The seeded permutation random_split takes: the first part is order[0, n - second), the second
// the last `second` indices.
std::vector<std::int64_t> split_order(std::int64_t n, double second_fraction, std::uint64_t seed,
                                      std::int64_t& second) {
  if (!(second_fraction >= 0 && second_fraction < 1))
    throw Error(fmt::format("split: fraction must be in [0, 1), got {}", second_fraction));
  second = static_cast<std::int64_t>(std::llround(second_fraction * static_cast<double>(n)));
  std::vector<std::int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  Generator generator(seed);
  for (std::int64_t i = n - 1; i > 0; --i)  // Fisher-Yates
    std::swap(order[i], order[generator.below(static_cast<std::uint64_t>(i + 1))]);
  return order;
}

template <class Examples>
std::pair<Examples, Examples> split_examples(const Examples& dataset, double second_fraction,
                                             std::uint64_t seed) {
  std::int64_t second = 0;
  const std::vector<std::int64_t> order =
      split_order(dataset.size(), second_fraction, seed, second);
  const std::vector<std::int64_t> first_indices(order.begin(), order.end() - second);
  const std::vector<std::int64_t> second_indices(order.end() - second, order.end());
  return {dataset.subset(first_indices), dataset.subset(second_indices)};
}

}  // namespace

std::pair<TensorDataset, TensorDataset> random_split(const TensorDataset& dataset,
                                                     double second_fraction, std::uint64_t seed) {
  return split_examples(dataset, second_fraction, seed);
}

std::pair<ByteImageDataset, ByteImageDataset> random_split(const ByteImageDataset& dataset,
                                                           double second_fraction,
                                                           std::uint64_t seed) {
  return split_examples(dataset, second_fraction, seed);
}

SplitRows split_rows(std::int64_t rows, double test_fraction, double validation_fraction,
                     std::uint64_t seed) {
  std::int64_t test = 0, validation = 0;
  const std::vector<std::int64_t> order = split_order(rows, test_fraction, seed, test);
  const std::vector<std::int64_t> kept(order.begin(), order.end() - test);
  const std::vector<std::int64_t> inner = split_order(static_cast<std::int64_t>(kept.size()),
                                                      validation_fraction, seed + 1, validation);
  SplitRows split;
  split.test.assign(order.end() - test, order.end());
  for (std::size_t i = 0; i < inner.size(); ++i)
    (i + static_cast<std::size_t>(validation) < inner.size() ? split.train : split.validation)
        .push_back(kept[static_cast<std::size_t>(inner[i])]);
  return split;
}

}  // namespace lathe
