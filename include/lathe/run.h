#pragma once
// A whole training run from a RunConfig, for every model: read and split the data (tables and
// images, or text for a language model), fit preprocessing (or train the tokenizer) on the
// training split, build the model through the layer registry, the optimizer and schedule, train
// with the one Trainer, test, and save the bundle. This is what `lathe train` runs, in one
// process or under mpirun; the C++ examples show the same steps written out by hand.
#include <filesystem>
#include <functional>
#include <iosfwd>
#include <memory>

#include "lathe/config.h"
#include "lathe/data.h"
#include "lathe/io.h"
#include "lathe/text.h"
#include "lathe/train.h"

namespace lathe {

struct PreparedData {
  Task task = Task::Classification;
  // Examples (tables, images): the three splits, preprocessed. Validation may be empty. uint8
  // IDX images are a ByteImageDataset, converted batch by batch; the rest TensorDatasets.
  std::shared_ptr<const Dataset> train, validation, test;
  Preprocessing preprocessing;
  // Text: the token stream (training and validation splits) and the tokenizer trained on it.
  std::shared_ptr<const TokenStream> tokens;
  std::shared_ptr<const Tokenizer> tokenizer;
  std::string sample_prompt;  // text: the corpus's first character, where samples start
  nlohmann::json task_info;   // what a bundle records about inputs and targets
  // Model arguments the data decides, filled into the [model] spec where it leaves them out
  // ({"vocab_size": V} for text).
  nlohmann::json model_arguments = nlohmann::json::object();
  std::string summary;  // the "Data: ..." line
  // What one example's features are, added to a shape error so the user can count them
  // ("penguins.csv encodes to 10 features per row: island=Biscoe, ..."); empty where obvious.
  std::string features;
};

PreparedData prepare_data(const RunConfig& config);

// The [model] against one example of the data, layer by layer through the layer registry:
// an error names the layer's config line and index and the sizes that disagree
// ("config.toml:14: model.layers[2]: linear: the input has 100 features but 'in' is 784").
// run_training checks before the data loads where the data's header tells its shape (IDX, text)
// and again once it is read.
void check_model_shapes(const RunConfig& config, const Shape& example);

// The loss a task trains with: cross-entropy on int64 class indices (with label smoothing when
// given; predictions [N, T, C] for targets [N, T], a language model's, are scored per position),
// or MSE on float targets (a prediction of shape [N,1] is compared with targets [N]).
LossFunction loss_for(const std::string& loss_name, double label_smoothing = 0.0);

// The [optimizer] section's optimizer over `params`; with decay_matrices_only, tensors of rank
// < 2 (biases, LayerNorm weights) are exempt from weight decay, as nanoGPT groups them.
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& config,
                                          std::vector<NamedTensor> params);

// The [schedule] section's schedule from `base_lr` over `total_steps` (null for a constant lr).
std::shared_ptr<const LRSchedule> make_schedule(const ScheduleConfig& config, double base_lr,
                                                std::int64_t total_steps);

struct RunResult {
  std::vector<TrainingRecord> history;
  EvaluationResult train;  // the final model on the training split (examples only)
  EvaluationResult test;   // examples only
  std::filesystem::path bundle_path;
  std::string sample;  // a language model: text it generated after training
  double milliseconds_per_step = 0;
};

// The run folder (trainer.output_dir) gets, besides the Trainer's files, config.json (the
// resolved config) and status.json (running with the process id, host and start time; then
// finished, failed with the error, or stopped), both written before training starts, and, for a
// language model with trainer.sample_every, samples.jsonl. `stop_requested` (one process only)
// is asked after every step: when it answers true, training stops with TrainingStopped.
RunResult run_training(const RunConfig& config, bool resume, std::ostream& out,
                       const std::function<bool()>& stop_requested = {});

}  // namespace lathe
