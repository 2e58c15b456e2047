#pragma once
// The training loop: epochs of batches, the seed's log lines, validation every epoch, early
// stopping, atomic checkpoints with bit-exact resume, and a run directory with metrics.jsonl and
// an SVG plot of the curves.
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/distributed.h"
#include "lathe/nn.h"
#include "lathe/optim.h"

namespace lathe {

enum class Task { Classification, Regression };

using LossFunction = std::function<Tensor(const Tensor& prediction, const Tensor& target)>;

struct EvaluationResult {
  std::int64_t count = 0;
  double loss = 0;      // mean over examples
  double accuracy = 0;  // classification: fraction correct
  double rmse = 0;      // regression
  double r2 = 0;        // regression: 1 - SS_res / SS_tot
  nlohmann::json to_json(Task task) const;
  std::string describe(Task task) const;  // "Accuracy = 87.91%" or "RMSE = 4.12, R^2 = 0.75"
};

// Loss, accuracy or RMSE/R^2 of `model` over every batch of `loader`, in eval mode, no grad.
// A loader with augmentation is refused.
EvaluationResult evaluate(Module& model, const LossFunction& loss, Task task, DataLoader& loader);
// The same through any forward function (an InferencePlan's, say), which runs as it is.
EvaluationResult evaluate(const std::function<Tensor(const Tensor&)>& forward,
                          const LossFunction& loss, Task task, DataLoader& loader);

struct EpochRecord {
  std::int64_t epoch = 0;
  double train_loss = 0;
  bool has_validation = false;
  EvaluationResult validation;
  double learning_rate = 0;
  double seconds = 0;        // the whole epoch: training, validation
  double train_seconds = 0;  // the training pass alone
  nlohmann::json to_json(Task task) const;
  static EpochRecord from_json(const nlohmann::json& json);
};

struct TrainerOptions {
  std::int64_t epochs = 10;
  std::int64_t log_every = 100;              // batches between "Epoch e: Loss = ..." lines; 0: none
  std::filesystem::path output_dir;          // empty: no checkpoint, metrics or plot
  std::int64_t early_stopping_patience = 0;  // epochs without a better validation loss; 0: off
  double clip_grad_norm = 0;                 // 0: off
  bool resume = false;                       // continue from output_dir/checkpoint.safetensors
  enum class Progress { Auto, Always, Never } progress = Progress::Auto;  // Auto: when a TTY
  nlohmann::json run_identity;   // stored in checkpoints; resume refuses a different one
  LossFunction evaluation_loss;  // the validation loss; empty: the training loss
  // Data-parallel training across these processes (see distributed.h): the training loader must
  // be sharded one shard per rank; gradients are summed after every backward, losses are
  // averaged over the whole batch, and only rank 0 writes checkpoints and run files (give the
  // other ranks a stream that discards). Null or one process: plain training.
  ProcessGroup* processes = nullptr;
};

class Trainer {
 public:
  Trainer(Module& model, Optimizer& optimizer, LossFunction loss, Task task, TrainerOptions options,
          std::shared_ptr<const LRSchedule> schedule, std::ostream& out);

  // Trains for the remaining epochs; returns the whole history (including resumed epochs).
  const std::vector<EpochRecord>& fit(DataLoader& train, DataLoader* validation);
  const std::vector<EpochRecord>& history() const { return history_; }
  bool stopped_early() const { return stopped_early_; }

  static std::filesystem::path checkpoint_path(const std::filesystem::path& output_dir);

 private:
  double train_epoch(DataLoader& train, std::int64_t epoch);
  double step(const Batch& batch, std::int64_t global_rows, std::int64_t epoch,
              std::int64_t batch_index);
  // The sum of `values` over all processes (itself when not distributed).
  std::vector<double> summed(std::vector<double> values) const;
  bool writes_files() const;
  void broadcast_model();
  void save_checkpoint() const;
  void load_checkpoint();
  void write_run_files() const;

  Module& model_;
  Optimizer& optimizer_;
  LossFunction loss_;
  Task task_;
  TrainerOptions options_;
  std::shared_ptr<const LRSchedule> schedule_;
  std::ostream& out_;
  std::unique_ptr<GradientReducer> reducer_;  // when distributed
  std::vector<EpochRecord> history_;
  double best_validation_loss_;
  std::int64_t epochs_without_improvement_ = 0;
  bool stopped_early_ = false;
};

// An SVG document with the training and validation loss and the validation metric per epoch.
std::string render_training_curves(const std::vector<EpochRecord>& history, Task task);

}  // namespace lathe
