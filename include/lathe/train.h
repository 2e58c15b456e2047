#pragma once
// The training loop for every model: batches from a BatchSource (a DataLoader's epochs, or an
// endless stream of token windows), each optimizer step over one or more batches (gradient
// accumulation) computed in shards on replicas that share the weights (in-process data
// parallelism) and summed across processes (MPI), periodic evaluation with the seed's log lines,
// early stopping, atomic checkpoints with bit-exact resume, and a run directory with
// metrics.jsonl, train_log.jsonl and an SVG plot of the curves. How long to train is epochs or
// iterations.
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/distributed.h"
#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/optim.h"

namespace lathe {

namespace detail {
class ShardedModel;
}

// What the model predicts: class scores [N, C], values [N, ...], or next-token logits
// [N, T, vocab] for int64 tokens [N, T].
enum class Task { Classification, Regression, LanguageModel };
const char* task_name(Task task);  // "classification", "regression", "language_model"

using LossFunction = std::function<Tensor(const Tensor& prediction, const Tensor& target)>;

struct EvaluationResult {
  std::int64_t count = 0;  // examples (a language model's: windows)
  double loss = 0;         // mean over examples
  double accuracy = 0;     // classification: fraction correct; language model: of next tokens
  double rmse = 0;         // regression
  double r2 = 0;           // regression: 1 - SS_res / SS_tot
  nlohmann::json to_json(Task task) const;
  std::string describe(Task task) const;  // "Accuracy = 87.91%" or "RMSE = 4.12, R^2 = 0.75"
};

// Loss, accuracy or RMSE/R^2 of `model` over pass `pass` of `source` (started here), in eval
// mode, no grad. A DataLoader with augmentation, and an endless source, are refused.
EvaluationResult evaluate(Module& model, const LossFunction& loss, Task task, BatchSource& source,
                          std::int64_t pass = 0);
// The same through any forward function (an InferencePlan's, say), which runs as it is.
EvaluationResult evaluate(const std::function<Tensor(const Tensor&)>& forward,
                          const LossFunction& loss, Task task, BatchSource& source,
                          std::int64_t pass = 0);

// One evaluation point: the end of an epoch, or every eval_every steps when training for
// iterations (and at step 0, before any step).
struct TrainingRecord {
  std::int64_t step = 0;   // optimizer steps taken before it
  std::int64_t epoch = 0;  // the epoch it ends (epochs), or the pass of the data it is in
  // Mean over the span's batches, or the training-split estimate; NaN at step 0 without an
  // estimate (no batch trained yet), and then left out of the JSON.
  double train_loss = 0;
  bool has_validation = false;
  EvaluationResult validation;
  double learning_rate = 0;     // of the span's last step
  double seconds = 0;           // the span: training and evaluation
  double train_seconds = 0;     // the span's training steps alone
  double items_per_second = 0;  // examples (tokens for a language model) per training second
  double time = 0;              // when it was recorded: seconds since 1970 (UTC)
  nlohmann::json to_json(Task task) const;
  // Also reads the records of checkpoints written before steps were counted.
  static TrainingRecord from_json(const nlohmann::json& json);
};

struct TrainerOptions {
  // How long: `epochs` passes over the training data, or, when `iterations` > 0, that many
  // optimizer steps (an endless source, such as token windows, needs iterations).
  std::int64_t epochs = 10;
  std::int64_t iterations = 0;
  // Steps between evaluations when training for iterations (also one at step 0 and one at the
  // end); 0: at the end of every pass. Training for epochs evaluates at the end of each.
  std::int64_t eval_every = 0;
  std::int64_t gradient_accumulation = 1;  // batches per optimizer step
  // Epochs: batches between "Epoch e: Loss = ..." lines. Iterations: steps between "iter N:
  // loss ..." lines. 0: none.
  std::int64_t log_every = 100;
  // In-process data parallelism: every batch is split into this many row shards computed at the
  // same time, one per pool thread, on replicas of the model that share its weights; gradients
  // are summed in shard order. 1: off. 0: automatic, one per pool thread for a language model
  // that allows it (see shard_count_for), 1 for other tasks, whose kernels use the threads
  // instead. A model with buffers (batch norm's running statistics) is not sharded.
  std::int64_t shards = 1;
  std::filesystem::path output_dir;          // empty: no checkpoint, metrics or plot
  std::int64_t early_stopping_patience = 0;  // evaluations without a better validation loss
  double clip_grad_norm = 0;                 // 0: off
  // Mixed precision: during fit(), every float32 product (linear layers, attention, convolutions)
  // is computed from bf16-rounded operands on the CPU's bf16 dot-product instruction; weights,
  // gradients and optimizer state stay float32. fit() refuses it on a CPU without AVX512_BF16
  // (lathe train falls back to float32 with a note instead). Evaluation after fit() is float32.
  bool bf16_products = false;
  bool resume = false;  // continue from output_dir/checkpoint.safetensors
  enum class Progress { Auto, Always, Never } progress = Progress::Auto;  // Auto: when a TTY
  nlohmann::json run_identity;  // stored in checkpoints; resume refuses a different one
  // Also stored in checkpoints: settings a resume may change (lathe train: the optimizer's and
  // the schedule's); a resume that changes them says which in a note.
  nlohmann::json run_settings;
  LossFunction evaluation_loss;  // the validation loss; empty: the training loss
  // Data-parallel training across these processes (see distributed.h): the training source must
  // yield one shard per rank; gradients are summed after every step, losses are averaged over
  // the whole batch, and only rank 0 writes checkpoints and run files (give the other ranks a
  // stream that discards). Null or one process: plain training.
  ProcessGroup* processes = nullptr;
  // Asked after every optimizer step; when it answers true, fit() throws TrainingStopped (the
  // checkpoint of the last evaluation stays, so --resume continues from there). Empty: never.
  std::function<bool()> stop_requested;
  // Work every `every` optimizer steps, on the process that writes files, after the step (a
  // language model's sample, say). The model is back in training mode afterwards.
  struct StepHook {
    std::int64_t every = 0;  // 0: never
    std::function<void(std::int64_t steps_taken)> run;
  } step_hook;
};

// What fit() throws when TrainerOptions::stop_requested answered true.
class TrainingStopped : public Error {
 public:
  TrainingStopped(std::int64_t steps_taken, const std::string& message)
      : Error(message), steps_taken_(steps_taken) {}
  std::int64_t steps_taken() const { return steps_taken_; }

 private:
  std::int64_t steps_taken_;
};

// The shards `requested` (TrainerOptions::shards) resolves to for `model` on batches of
// `batch_rows` rows: 0 means one per pool thread, at most one per row, and 1 where the model
// cannot be sharded. An explicit count for a model that cannot be sharded is an error naming why.
std::int64_t shard_count_for(const Module& model, std::int64_t requested, std::int64_t batch_rows);

class Trainer {
 public:
  Trainer(Module& model, Optimizer& optimizer, LossFunction loss, Task task, TrainerOptions options,
          std::shared_ptr<const LRSchedule> schedule, std::ostream& out);
  ~Trainer();

  // Trains until the end (resuming first if asked); returns the whole history, resumed records
  // included. `validation` is evaluated at every evaluation point (one pass); `train_estimate`,
  // when given, too, and its loss is reported as the training loss (a language model's estimate
  // on the training split).
  const std::vector<TrainingRecord>& fit(BatchSource& train, BatchSource* validation,
                                         BatchSource* train_estimate = nullptr);
  const std::vector<TrainingRecord>& history() const { return history_; }
  bool stopped_early() const { return stopped_early_; }
  std::int64_t shards() const;
  // Mean time of the training steps this process ran (not resumed ones), in milliseconds.
  double milliseconds_per_step() const;

  // The checks a resume makes before it loads anything: the checkpoint exists and was written
  // by this run's setup (options.run_identity) and optimizer; the same errors as fit(). A caller
  // that writes to the run folder asks first, so a refused resume changes nothing there.
  void check_resumable() const;

  static std::filesystem::path checkpoint_path(const std::filesystem::path& output_dir);
  // The training loss at every log line (log_every), one JSON object a line: step (steps taken
  // with the batch's), epoch (fractional when the pass's length is known), loss, learning_rate,
  // time (seconds since 1970). Appended as training goes; a resume drops the lines past the
  // checkpoint, a fresh run starts it empty.
  static std::filesystem::path train_log_path(const std::filesystem::path& output_dir);

 private:
  // Where in the data the next step starts: the pass and the batch within it, and a resumed
  // source's own state (a random stream), which places it without skipping batches.
  struct Position {
    std::int64_t pass = 0;
    std::int64_t batch = 0;
    nlohmann::json source_state;
  };
  bool by_iterations() const { return options_.iterations > 0; }
  bool due_for_evaluation(std::int64_t step, bool pass_ended) const;
  // One optimizer step over the next batches; false when the pass ran out before any.
  bool step(BatchSource& train, Position& position);
  TrainingRecord evaluate_now(BatchSource* validation, BatchSource* train_estimate,
                              std::int64_t pass);
  void report(const TrainingRecord& record);
  void log_batch(std::int64_t pass, std::int64_t batch_index, double loss, std::int64_t rows);
  // The sum of `values` over all processes (itself when not distributed).
  std::vector<double> summed(std::vector<double> values) const;
  bool writes_files() const;
  void broadcast_model();
  // `mid_span`: written between evaluations (a stop), so it keeps the running sums of the loss
  // since the last evaluation and the last log line, for a resume to report what a run without
  // the stop would (not in a distributed run, where those sums are per process).
  void save_checkpoint(const Position& position, const BatchSource& train,
                       bool mid_span = false) const;
  void load_checkpoint(Position& position, BatchSource& train);
  // Throws when the checkpoint (`steps` taken, in `pass` after `batch` batches) is past the end
  // this run asks for.
  void refuse_past_end(const std::filesystem::path& path, std::int64_t steps, std::int64_t pass,
                       std::int64_t batch) const;
  void write_run_files() const;
  // Appends a line to train_log.jsonl (the process that writes files only).
  void append_train_log(std::int64_t step, double epoch, double loss) const;
  // Keeps the train log's lines up to `steps` (a resumed run), or none (a fresh one).
  void restart_train_log(std::int64_t steps) const;

  Module& model_;
  Optimizer& optimizer_;
  LossFunction loss_;
  Task task_;
  TrainerOptions options_;
  std::shared_ptr<const LRSchedule> schedule_;
  std::ostream& out_;
  std::unique_ptr<detail::ShardedModel> sharded_;
  std::unique_ptr<GradientReducer> reducer_;  // when distributed
  std::vector<TrainingRecord> history_;
  double best_validation_loss_;
  std::int64_t evaluations_without_improvement_ = 0;
  bool stopped_early_ = false;
  // The span since the last record (this process's rows) and since the last log line.
  double span_loss_sum_ = 0, span_rows_ = 0, span_items_ = 0, span_train_seconds_ = 0;
  double log_loss_sum_ = 0, log_rows_ = 0;
  double session_seconds_ = 0;
  std::int64_t session_steps_ = 0;
  std::int64_t batches_per_epoch_ = 0;  // of the training source; 0: endless
};

// An SVG document with the training and validation loss and the validation metric at every
// evaluation point (against epochs, or steps when the run counts iterations).
std::string render_training_curves(const std::vector<TrainingRecord>& history, Task task);

}  // namespace lathe
