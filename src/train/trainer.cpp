// Trainer::fit: the step loop for every model, logging, evaluation, early stopping and the run
// directory. Epochs and iterations differ only in when to evaluate and stop.
#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/parallel.h"
#include "lathe/train.h"
#include "src/tensor/gemm_bf16.h"
#include "src/train/progress.h"
#include "src/train/sharded_model.h"
#include "src/train/unix_time.h"

namespace lathe {
namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// What a batch counts toward throughput: its tokens for a language model, else its examples.
double items_of(const Batch& batch, Task task) {
  return static_cast<double>(task == Task::LanguageModel ? batch.inputs.numel()
                                                         : batch.targets.size(0));
}

}  // namespace

const char* task_name(Task task) {
  switch (task) {
    case Task::Classification:
      return "classification";
    case Task::Regression:
      return "regression";
    case Task::LanguageModel:
      return "language_model";
  }
  return "?";
}

std::int64_t shard_count_for(const Module& model, std::int64_t requested, std::int64_t batch_rows) {
  if (requested < 0)
    throw Error(fmt::format("trainer: shards must be 0 (automatic) or more, got {}", requested));
  if (requested == 1) return 1;
  const std::optional<std::string> why = detail::ShardedModel::why_not_shardable(model);
  if (requested == 0)
    return why ? 1
               : std::clamp<std::int64_t>(num_threads(), 1, std::max<std::int64_t>(batch_rows, 1));
  if (why) throw Error(fmt::format("trainer: {} shards asked for, but {}", requested, *why));
  return requested;
}

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
  const auto at_least = [](const char* key, std::int64_t value, std::int64_t minimum) {
    if (value < minimum)
      throw Error(fmt::format("trainer: {} must be at least {}, got {}", key, minimum, value));
  };
  at_least("epochs", options_.epochs, 0);
  at_least("iterations", options_.iterations, 0);
  at_least("eval_every", options_.eval_every, 0);
  at_least("gradient_accumulation", options_.gradient_accumulation, 1);
  at_least("log_every", options_.log_every, 0);
  if (options_.resume && options_.output_dir.empty())
    throw Error("trainer: resume needs an output directory holding a checkpoint");
  sharded_ = std::make_unique<detail::ShardedModel>(
      model_, options_.shards == 0 ? 1 : shard_count_for(model_, options_.shards, 2));
}

Trainer::~Trainer() = default;

std::int64_t Trainer::shards() const {
  return sharded_->shards();
}

std::filesystem::path Trainer::checkpoint_path(const std::filesystem::path& output_dir) {
  return output_dir / "checkpoint.safetensors";
}

std::filesystem::path Trainer::train_log_path(const std::filesystem::path& output_dir) {
  return output_dir / "train_log.jsonl";
}

double Trainer::milliseconds_per_step() const {
  return session_steps_ == 0 ? 0.0
                             : 1000.0 * session_seconds_ / static_cast<double>(session_steps_);
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

bool Trainer::due_for_evaluation(std::int64_t step, bool pass_ended) const {
  if (!by_iterations()) return pass_ended;
  if (step == options_.iterations) return true;
  return options_.eval_every > 0 ? step % options_.eval_every == 0 : pass_ended;
}

void Trainer::log_batch(std::int64_t pass, std::int64_t batch_index, double loss,
                        std::int64_t rows) {
  if (options_.log_every == 0 || by_iterations() || batch_index % options_.log_every != 0) return;
  if (reducer_) {  // the whole batch's mean loss
    const std::vector<double> totals = summed({loss * static_cast<double>(rows), double(rows)});
    loss = totals[1] > 0 ? totals[0] / totals[1] : 0;
  }
  out_ << fmt::format("Epoch {}: Loss = {:.6f}\n", pass, loss) << std::flush;
  const double epoch = batches_per_epoch_ > 0
                           ? static_cast<double>(pass) + static_cast<double>(batch_index + 1) /
                                                             static_cast<double>(batches_per_epoch_)
                           : static_cast<double>(pass);
  append_train_log(optimizer_.steps_taken() + 1, epoch, loss);
}

// One optimizer step on the next gradient_accumulation batches (this process's rows of them).
bool Trainer::step(BatchSource& train, Position& position) {
  const auto started = std::chrono::steady_clock::now();
  struct Micro {
    Batch batch;
    std::int64_t index;
  };
  std::vector<Micro> micros;
  std::int64_t local_rows = 0, global_rows = 0;
  while (static_cast<std::int64_t>(micros.size()) < options_.gradient_accumulation) {
    std::optional<Batch> batch = train.next();
    if (!batch) break;
    local_rows += batch->targets.size(0);
    global_rows += train.global_batch_rows(position.batch);
    micros.push_back({std::move(*batch), position.batch++});
  }
  if (micros.empty()) return false;

  const std::int64_t step_index = optimizer_.steps_taken();
  if (schedule_) optimizer_.set_learning_rate(schedule_->learning_rate(step_index));
  optimizer_.zero_grad();
  if (reducer_)
    reducer_->begin_step(global_rows > 0 ? static_cast<double>(local_rows) / global_rows : 0.0);
  for (const Micro& micro : micros) {
    const std::int64_t rows = micro.batch.targets.size(0);
    double value = 0;
    if (rows > 0) {
      // One batch of a step weighs its share of the step's rows on this process.
      const double share = static_cast<double>(rows) / static_cast<double>(local_rows);
      try {
        value = sharded_->loss_backward(micro.batch, loss_, share,
                                        micros.size() == 1 ? reducer_.get() : nullptr);
      } catch (const std::exception& e) {
        if (session_steps_ > 0) throw;
        // A model that does not fit the data fails here first (a plugin's module without an
        // output_shape cannot be checked earlier, and may throw its own exceptions): say what
        // the data looked like.
        throw Error(
            fmt::format("the model's first training step failed on a batch of inputs {} "
                        "and targets {}: {}",
                        shape_str(micro.batch.inputs.shape()),
                        shape_str(micro.batch.targets.shape()), e.what()));
      }
      if (!std::isfinite(value))
        throw Error(fmt::format(
            "training diverged: the loss is {} at {}; the parameters were not updated by this "
            "step; try a lower learning rate or check the data",
            value,
            by_iterations() ? fmt::format("iteration {}", step_index)
                            : fmt::format("epoch {}, batch {}", position.pass, micro.index)));
    }
    span_loss_sum_ += value * static_cast<double>(rows);
    span_rows_ += static_cast<double>(rows);
    span_items_ += items_of(micro.batch, task_);
    log_loss_sum_ += value * static_cast<double>(rows);
    log_rows_ += static_cast<double>(rows);
    log_batch(position.pass, micro.index, value, rows);
  }
  if (reducer_) reducer_->finish_step();
  if (options_.clip_grad_norm > 0) clip_grad_norm(model_.parameters(), options_.clip_grad_norm);
  optimizer_.step();

  const double seconds = seconds_since(started);
  span_train_seconds_ += seconds;
  session_seconds_ += seconds;
  ++session_steps_;
  const std::int64_t steps = optimizer_.steps_taken();
  if (by_iterations() && options_.log_every > 0 && steps % options_.log_every == 0) {
    const std::vector<double> totals = summed({log_loss_sum_, log_rows_});
    const double loss = totals[1] > 0 ? totals[0] / totals[1] : 0.0;
    out_ << fmt::format("iter {}: loss {:.4f}, lr {:.3g}, {:.1f} ms/iter\n", steps, loss,
                        optimizer_.learning_rate(), milliseconds_per_step())
         << std::flush;
    log_loss_sum_ = log_rows_ = 0;
    const double epoch = static_cast<double>(position.pass) +
                         (batches_per_epoch_ > 0 ? static_cast<double>(position.batch) /
                                                       static_cast<double>(batches_per_epoch_)
                                                 : 0.0);
    append_train_log(steps, epoch, loss);
  }
  return true;
}

TrainingRecord Trainer::evaluate_now(BatchSource* validation, BatchSource* train_estimate,
                                     std::int64_t pass) {
  const auto started = std::chrono::steady_clock::now();
  TrainingRecord record;
  record.step = optimizer_.steps_taken();
  record.epoch = pass;
  record.learning_rate = optimizer_.learning_rate();
  const std::vector<double> totals = summed({span_loss_sum_, span_rows_, span_items_});
  if (record.step > 0 && totals[1] == 0)
    throw Error("training: the training data yields no batches");
  record.train_loss =
      totals[1] > 0 ? totals[0] / totals[1] : std::numeric_limits<double>::quiet_NaN();
  record.train_seconds = span_train_seconds_;
  record.items_per_second = span_train_seconds_ > 0 ? totals[2] / span_train_seconds_ : 0.0;
  // Evaluation passes are numbered by the step (iterations) or the epoch they follow.
  const std::int64_t evaluation_pass = by_iterations() ? record.step : pass;
  const LossFunction& loss = options_.evaluation_loss ? options_.evaluation_loss : loss_;
  if (train_estimate)
    record.train_loss = evaluate(model_, loss, task_, *train_estimate, evaluation_pass).loss;
  if (validation) {
    record.has_validation = true;
    record.validation = evaluate(model_, loss, task_, *validation, evaluation_pass);
  }
  record.seconds = span_train_seconds_ + seconds_since(started);
  record.time = detail::unix_time();
  span_loss_sum_ = span_rows_ = span_items_ = span_train_seconds_ = 0;
  return record;
}

void Trainer::report(const TrainingRecord& r) {
  if (by_iterations()) {
    // Before the first step there is no training loss, unless a train estimate measured one.
    std::vector<std::string> parts;
    if (!std::isnan(r.train_loss)) parts.push_back(fmt::format("train loss {:.4f}", r.train_loss));
    if (r.has_validation) {
      parts.push_back(fmt::format("val loss {:.4f}", r.validation.loss));
      if (task_ != Task::LanguageModel) parts.push_back(r.validation.describe(task_));
    }
    if (parts.empty()) parts.push_back("no loss measured yet");  // step 0, no validation
    out_ << fmt::format("iter {}: {}\n", r.step, fmt::join(parts, ", ")) << std::flush;
    return;
  }
  if (r.has_validation)
    out_ << fmt::format("Epoch {}: Validation Loss = {:.6f}, {}\n", r.epoch, r.validation.loss,
                        r.validation.describe(task_));
  out_ << fmt::format("Epoch {}: Train Loss = {:.6f} ({:.1f} s)\n", r.epoch, r.train_loss,
                      r.seconds)
       << std::flush;
}

const std::vector<TrainingRecord>& Trainer::fit(BatchSource& train, BatchSource* validation,
                                                BatchSource* train_estimate) {
  if (!by_iterations() && train.batches_per_epoch() == 0)
    throw Error(
        "trainer: the training data is an endless stream (token windows): train for iterations "
        "(trainer.iterations) rather than epochs");
  if (options_.shards == 0 && task_ == Task::LanguageModel) {
    // Automatic: a language model gets one shard per thread, where it allows and a batch has the
    // rows. Other models keep one shard and split each kernel over the threads instead: the
    // seed MLP's half-batches of 32 rows were 1.4x slower per epoch than its whole batch of 64
    // on 2 threads, the GPT's 6 windows of 64 tokens faster (docs/PERFORMANCE.md).
    const std::int64_t shards = shard_count_for(
        model_, 0,
        train.global_batch_rows(0) /
            std::max<std::int64_t>(1, options_.processes ? options_.processes->size() : 1));
    if (shards != sharded_->shards())
      sharded_ = std::make_unique<detail::ShardedModel>(model_, shards);
  }
  batches_per_epoch_ = train.batches_per_epoch();
  std::optional<detail::BFloat16Products> bf16_products;
  if (options_.bf16_products) {
    if (!detail::bf16_products_supported())
      throw Error(
          "trainer: bf16 products need a CPU with AVX512_BF16 (and a build made for one); this "
          "one has none: train in float32");
    bf16_products.emplace();
  }
  Position position;
  if (options_.resume) load_checkpoint(position, train);
  if (options_.processes && options_.processes->distributed()) {
    broadcast_model();
    reducer_ = std::make_unique<GradientReducer>(*options_.processes, model_.parameters());
  }
  if (writes_files()) {
    std::filesystem::create_directories(options_.output_dir);
    restart_train_log(options_.resume ? optimizer_.steps_taken() : 0);
    // A fresh run in a folder used before: no earlier run's records until its first evaluation.
    if (!options_.resume) write_file_atomically(options_.output_dir / "metrics.jsonl", "");
  }
  const bool bar_wanted =
      options_.progress == TrainerOptions::Progress::Always ||
      (options_.progress == TrainerOptions::Progress::Auto && detail::stdout_is_terminal());
  detail::ProgressBar bar(out_, bar_wanted);

  const auto record_and_save = [&](TrainingRecord record) {
    bar.clear();
    report(record);
    if (record.has_validation) {
      if (record.validation.loss < best_validation_loss_) {
        best_validation_loss_ = record.validation.loss;
        evaluations_without_improvement_ = 0;
      } else if (++evaluations_without_improvement_ >= options_.early_stopping_patience &&
                 options_.early_stopping_patience > 0) {
        stopped_early_ = true;
      }
    }
    history_.push_back(record);
    if (writes_files()) {
      save_checkpoint(position, train);
      write_run_files();
    }
    if (stopped_early_)
      out_ << fmt::format(
          "Early stopping: no better validation loss for {} evaluations (best "
          "{:.6f})\n",
          options_.early_stopping_patience, best_validation_loss_);
  };

  model_.train();
  const bool resumed_mid_pass = position.batch > 0;
  train.start_epoch(position.pass);
  if (position.source_state.is_null())
    train.skip(position.batch);
  else
    train.load_state(position.source_state);
  if (!resumed_mid_pass && by_iterations() && history_.empty() && optimizer_.steps_taken() == 0)
    record_and_save(evaluate_now(validation, train_estimate, position.pass));
  bar.start(by_iterations() ? options_.iterations : train.batches_per_epoch());
  std::int64_t bar_done = by_iterations() ? optimizer_.steps_taken() : position.batch;
  while (!stopped_early_) {
    if (by_iterations() ? optimizer_.steps_taken() >= options_.iterations
                        : position.pass >= options_.epochs)
      break;
    bool pass_ended = !step(train, position);
    if (!pass_ended) {
      bar.update(++bar_done, log_rows_ > 0 ? log_loss_sum_ / log_rows_ : 0.0);
      if (!by_iterations()) pass_ended = position.batch >= train.batches_per_epoch();
    } else if (position.batch == 0) {
      throw Error("training: the training data yields no batches");
    }
    const bool evaluate_here =
        due_for_evaluation(optimizer_.steps_taken(), pass_ended) &&
        (by_iterations() ? history_.empty() || history_.back().step != optimizer_.steps_taken()
                         : true);
    const std::int64_t finished_pass = position.pass;
    if (pass_ended) {
      ++position.pass;
      position.batch = 0;
      if (by_iterations()) train.start_epoch(position.pass);
    }
    if (evaluate_here) {
      record_and_save(evaluate_now(validation, train_estimate, finished_pass));
      model_.train();
      if (!by_iterations()) {
        if (position.pass < options_.epochs) train.start_epoch(position.pass);
        bar.start(train.batches_per_epoch());
        bar_done = 0;
      }
    }
    const std::int64_t steps = optimizer_.steps_taken();
    if (!pass_ended && options_.step_hook.every > 0 && options_.step_hook.run &&
        steps % options_.step_hook.every == 0 && writes_files()) {
      options_.step_hook.run(steps);
      model_.train();
    }
    if (options_.stop_requested && options_.stop_requested()) {
      bar.clear();
      // A checkpoint at the stop, unless the evaluation of this step wrote one: a resume redoes
      // nothing.
      const bool saved = !history_.empty() && history_.back().step == steps;
      if (writes_files() && !saved) save_checkpoint(position, train, /*mid_span=*/true);
      throw TrainingStopped(
          steps, fmt::format("training stopped at step {}{}", steps,
                             writes_files() ? fmt::format("; its checkpoint is in {} (continue "
                                                          "with --resume)",
                                                          options_.output_dir.string())
                                            : std::string()));
    }
  }
  bar.clear();
  return history_;
}

void Trainer::append_train_log(std::int64_t step, double epoch, double loss) const {
  if (!writes_files()) return;
  const nlohmann::json line = {{"step", step},
                               {"epoch", epoch},
                               {"loss", loss},
                               {"learning_rate", optimizer_.learning_rate()},
                               {"time", detail::unix_time()}};
  // One write of a whole line, so a reader sees whole lines, or a last one still incomplete.
  std::ofstream file(train_log_path(options_.output_dir), std::ios::app | std::ios::binary);
  file << line.dump() + "\n" << std::flush;
}

void Trainer::restart_train_log(std::int64_t steps) const {
  const std::filesystem::path path = train_log_path(options_.output_dir);
  std::string kept;
  if (steps > 0) {
    std::ifstream file(path, std::ios::binary);
    for (std::string line; std::getline(file, line);) {
      const nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
      if (record.is_object() && record.contains("step") && record["step"].is_number_integer() &&
          record["step"].get<std::int64_t>() <= steps)
        kept += line + "\n";
    }
  }
  write_file_atomically(path, kept);
}

void Trainer::write_run_files() const {
  std::string lines;
  for (const TrainingRecord& r : history_) lines += r.to_json(task_).dump() + "\n";
  write_file_atomically(options_.output_dir / "metrics.jsonl", lines);
  write_file_atomically(options_.output_dir / "curves.svg",
                        render_training_curves(history_, task_));
}

}  // namespace lathe
