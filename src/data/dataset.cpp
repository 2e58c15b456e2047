// TensorDataset and the seeded train/validation split.
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

}  // namespace

TensorDataset::TensorDataset(Tensor inputs, Tensor targets)
    : inputs_(std::move(inputs)), targets_(std::move(targets)) {
  if (inputs_.dim() < 1 || targets_.dim() < 1 || inputs_.size(0) != targets_.size(0))
    throw Error(fmt::format("dataset: inputs {} and targets {} must have the same first axis",
                            shape_str(inputs_.shape()), shape_str(targets_.shape())));
}

std::int64_t TensorDataset::size() const {
  return inputs_.size(0);
}

Batch TensorDataset::get_batch(const std::vector<std::int64_t>& indices) const {
  for (auto i : indices)
    if (i < 0 || i >= size())
      throw Error(fmt::format("dataset: index {} is out of range for {} examples", i, size()));
  return {gather_rows(inputs_, indices), gather_rows(targets_, indices)};
}

TensorDataset TensorDataset::subset(const std::vector<std::int64_t>& indices) const {
  const Batch rows = get_batch(indices);
  return TensorDataset(rows.inputs, rows.targets);
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

}  // namespace

std::pair<TensorDataset, TensorDataset> random_split(const TensorDataset& dataset,
                                                     double second_fraction, std::uint64_t seed) {
  std::int64_t second = 0;
  const std::vector<std::int64_t> order =
      split_order(dataset.size(), second_fraction, seed, second);
  const std::vector<std::int64_t> first_indices(order.begin(), order.end() - second);
  const std::vector<std::int64_t> second_indices(order.end() - second, order.end());
  return {dataset.subset(first_indices), dataset.subset(second_indices)};
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
