// Trainer::fit: the epoch loop, logging, validation, early stopping and the run directory.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <optional>
#include <ostream>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/train.h"
#include "src/train/progress.h"

namespace lathe {

Trainer::Trainer(Module& model, Optimizer& optimizer, LossFunction loss, Task task,
                 TrainerOptions options, std::shared_ptr<const LRSchedule> schedule,
                 std::ostream& out)
    : model_(model),
      optimizer_(optimizer),
      loss_(std::move(loss)),
      task_(task),
      options_(std::move(options)),
      schedule_(std::move(schedule)),
      out_(out),
      best_validation_loss_(std::numeric_limits<double>::infinity()) {
  if (options_.epochs < 0)
    throw Error(fmt::format("trainer: epochs must not be negative, got {}", options_.epochs));
  if (options_.resume && options_.output_dir.empty())
    throw Error("trainer: resume needs an output directory holding a checkpoint");
}

std::filesystem::path Trainer::checkpoint_path(const std::filesystem::path& output_dir) {
  return output_dir / "checkpoint.safetensors";
}

bool Trainer::writes_files() const {
  return !options_.output_dir.empty() && (!options_.processes || options_.processes->rank() == 0);
}

std::vector<double> Trainer::summed(std::vector<double> values) const {
  if (reducer_) options_.processes->allreduce_sum(values);
  return values;
}

// Every process starts from rank 0's parameters and buffers: the live tensors, not state_dict()'s
// saved forms, which can be copies (Linear's [in, out] weights).
void Trainer::broadcast_model() {
  for (auto& [name, tensor] : model_.named_parameters()) options_.processes->broadcast(tensor, 0);
  for (auto& [name, tensor] : model_.named_buffers()) options_.processes->broadcast(tensor, 0);
}

// One optimizer step on this process's rows of a batch of `global_rows` rows; returns the local
// mean loss (0 for an empty shard).
double Trainer::step(const Batch& batch, std::int64_t global_rows, std::int64_t epoch,
                     std::int64_t batch_index) {
  if (schedule_) optimizer_.set_learning_rate(schedule_->learning_rate(optimizer_.steps_taken()));
  optimizer_.zero_grad();
  const std::int64_t rows = batch.targets.size(0);
  double value = 0;
  if (reducer_) reducer_->begin_step(static_cast<double>(rows) / static_cast<double>(global_rows));
  if (rows > 0) {
    std::optional<GradientListenerGuard> listening;
    if (reducer_) listening.emplace(*reducer_);
    const Tensor loss = loss_(model_(batch.inputs), batch.targets);
    value = loss.item();
    if (!std::isfinite(value))
      throw Error(
          fmt::format("training diverged: the loss is {} at epoch {}, batch {}; try a "
                      "lower learning rate",
                      value, epoch, batch_index));
    loss.backward();
  }
  if (reducer_) reducer_->finish_step();
  if (options_.clip_grad_norm > 0) clip_grad_norm(model_.parameters(), options_.clip_grad_norm);
  optimizer_.step();
  return value;
}

double Trainer::train_epoch(DataLoader& train, std::int64_t epoch) {
  const bool bar_wanted =
      options_.progress == TrainerOptions::Progress::Always ||
      (options_.progress == TrainerOptions::Progress::Auto && detail::stdout_is_terminal());
  detail::ProgressBar bar(out_, bar_wanted);
  bar.start(train.batches_per_epoch());
  model_.train();
  train.start_epoch(epoch);
  double loss_sum = 0;
  std::int64_t examples = 0, batch_index = 0;
  while (auto batch = train.next()) {
    const std::int64_t global_rows = train.global_batch_rows(batch_index);
    double value = step(*batch, global_rows, epoch, batch_index);
    const std::int64_t rows = batch->targets.size(0);
    loss_sum += value * static_cast<double>(rows);
    examples += rows;
    if (options_.log_every > 0 && batch_index % options_.log_every == 0) {
      if (reducer_)  // the whole batch's mean loss
        value = summed({value * static_cast<double>(rows)})[0] / static_cast<double>(global_rows);
      bar.clear();
      out_ << fmt::format("Epoch {}: Loss = {:.6f}\n", epoch, value) << std::flush;
    }
    ++batch_index;
    bar.update(batch_index, value);
  }
  bar.clear();
  const std::vector<double> totals = summed({loss_sum, static_cast<double>(examples)});
  if (totals[1] == 0) throw Error("training: the training set yields no batches");
  return totals[0] / totals[1];
}

const std::vector<EpochRecord>& Trainer::fit(DataLoader& train, DataLoader* validation) {
  if (options_.resume) load_checkpoint();
  if (options_.processes && options_.processes->distributed()) {
    broadcast_model();
    reducer_ = std::make_unique<GradientReducer>(*options_.processes, model_.parameters());
  }
  if (writes_files()) std::filesystem::create_directories(options_.output_dir);
  for (std::int64_t epoch = static_cast<std::int64_t>(history_.size());
       epoch < options_.epochs && !stopped_early_; ++epoch) {
    const auto started = std::chrono::steady_clock::now();
    EpochRecord record;
    record.epoch = epoch;
    record.learning_rate = optimizer_.learning_rate();
    record.train_loss = train_epoch(train, epoch);
    record.train_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (validation) {
      record.has_validation = true;
      record.validation = evaluate(
          model_, options_.evaluation_loss ? options_.evaluation_loss : loss_, task_, *validation);
      out_ << fmt::format("Epoch {}: Validation Loss = {:.6f}, {}\n", epoch, record.validation.loss,
                          record.validation.describe(task_));
      if (record.validation.loss < best_validation_loss_) {
        best_validation_loss_ = record.validation.loss;
        epochs_without_improvement_ = 0;
      } else if (++epochs_without_improvement_ >= options_.early_stopping_patience &&
                 options_.early_stopping_patience > 0) {
        stopped_early_ = true;
      }
    }
    record.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    out_ << fmt::format("Epoch {}: Train Loss = {:.6f} ({:.1f} s)\n", epoch, record.train_loss,
                        record.seconds)
         << std::flush;
    history_.push_back(record);
    if (writes_files()) {
      save_checkpoint();
      write_run_files();
    }
    if (stopped_early_)
      out_ << fmt::format("Early stopping: no better validation loss for {} epochs (best {:.6f})\n",
                          options_.early_stopping_patience, best_validation_loss_);
  }
  return history_;
}

void Trainer::write_run_files() const {
  std::string lines;
  for (const EpochRecord& r : history_) lines += r.to_json(task_).dump() + "\n";
  write_file_atomically(options_.output_dir / "metrics.jsonl", lines);
  write_file_atomically(options_.output_dir / "curves.svg",
                        render_training_curves(history_, task_));
}

}  // namespace lathe
