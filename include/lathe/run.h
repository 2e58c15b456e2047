#pragma once
// A whole training run from a RunConfig: read and split the data, fit preprocessing on the
// training split, build the model, optimizer and schedule, train, test, and save the bundle.
// This is what `lathe train` runs; the C++ examples show the same steps written out by hand.
#include <filesystem>
#include <iosfwd>
#include <memory>

#include "lathe/config.h"
#include "lathe/data.h"
#include "lathe/io.h"
#include "lathe/train.h"

namespace lathe {

struct PreparedData {
  std::shared_ptr<TensorDataset> train, validation, test;  // validation may be empty (size 0)
  Preprocessing preprocessing;
  Task task = Task::Classification;
  nlohmann::json task_info;  // what a bundle records about inputs and targets
};

PreparedData prepare_data(const RunConfig& config);

// The loss a task trains with: cross-entropy on int64 class indices (with label smoothing when
// given), or MSE on float targets (a prediction of shape [N,1] is compared with targets [N]).
LossFunction loss_for(const std::string& loss_name, double label_smoothing = 0.0);

// The [optimizer] section's optimizer over `params`.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config,
                                          std::vector<NamedTensor> params);

// The [schedule] section's schedule from `base_lr` over `total_steps` (null for a constant lr).
std::shared_ptr<const LRSchedule> make_schedule(const ScheduleConfig& config, double base_lr,
                                                std::int64_t total_steps);

struct RunResult {
  std::vector<EpochRecord> history;
  EvaluationResult train;  // the final model on the training split
  EvaluationResult test;
  std::filesystem::path bundle_path;
};

RunResult run_training(const RunConfig& config, bool resume, std::ostream& out);

}  // namespace lathe
