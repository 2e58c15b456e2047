#pragma once
// The TOML run configuration of `lathe train`: data, preprocessing, augmentation, model, loss,
// optimizer, schedule, trainer. Unknown keys, wrong types and bad values are errors naming the
// file, the line, the key and what is allowed. `--set key=value` overrides any key before
// validation.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe {

struct DataConfig {
  std::string format;  // "idx", "csv", "mnist_json", "text"
  std::filesystem::path train_images, train_labels, test_images, test_labels;  // idx
  std::filesystem::path path;        // csv; text: a file or a folder of *.txt files
  std::string tokenizer = "char";    // text: "char" or "bpe"
  std::int64_t vocab_size = 512;     // text with bpe
  std::string target;                // csv
  std::filesystem::path dir;         // mnist_json
  double test_fraction = 0.2;        // csv, mnist_json: held out for the final test
  double validation_fraction = 0.1;  // taken from the training data
  std::uint64_t seed = 0;            // the splits
  std::vector<std::string> class_names;
  // csv: how the table's cells become features (lathe/table.h TableOptions, docs/tabular.md).
  std::string delimiter = ",";  // "," ";" "\t"
  std::vector<std::string> categorical, drop;
  std::vector<std::string> missing_values = {"", "NA", "NaN", "null"};
  std::string impute = "none";              // numeric columns
  std::string impute_categorical = "none";  // categorical columns
  std::map<std::string, std::string> impute_columns;
  double fill_value = 0;
  std::string fill_category = "missing_value";
  bool missing_indicator = false;
  std::vector<std::string> missing_indicator_columns;
  std::string unknown_category = "ignore";
  // The table keys above as JSON, only those that differ from their defaults (so the identity of
  // runs from before they existed stays the same); empty when none does.
  nlohmann::json table_json() const;
};

struct PreprocessConfig {
  double scale = 1.0;
  std::optional<double> normalize_mean, normalize_std;
  bool standardize = false;
};

// [augment]: random transforms of the training batches only (see lathe/augment.h).
struct AugmentConfig {
  std::int64_t random_crop_padding = 0;  // 0: no random crop
  double horizontal_flip = 0;            // probability
  double random_erasing = 0;             // probability
  // The crop's padding value. Default: what a raw 0 pixel becomes after [preprocess] (-1 for
  // scale 1/255, mean 0.5, std 0.5); must be given with preprocess.standardize and a crop.
  double fill = 0;
  bool enabled() const {
    return random_crop_padding > 0 || horizontal_flip > 0 || random_erasing > 0;
  }
};

struct OptimizerConfig {
  std::string type = "adam";  // "sgd", "adam", "adamw"
  double lr = 1e-3;
  double momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  // Weight decay on tensors of rank >= 2 only (biases and norm weights exempt, as nanoGPT).
  // Default: true for text data (language models), false otherwise (PyTorch's optimizers).
  bool decay_matrices_only = false;
};

struct ScheduleConfig {
  std::string type = "constant";  // "constant", "step", "cosine"
  std::int64_t step_size = 1000;  // step: optimizer steps between decays
  double gamma = 0.1;
  std::int64_t warmup_steps = 0;  // cosine
  double min_lr = 0;
};

struct TrainerConfig {
  std::int64_t epochs = 10;
  std::int64_t batch_size = 64;
  std::int64_t eval_batch_size = 1000;
  std::int64_t log_every = 100;
  std::filesystem::path output_dir = "runs/latest";
  std::uint64_t seed = 0;
  std::int64_t early_stopping_patience = 0;
  double clip_grad_norm = 0;
  bool shuffle = true;
  bool drop_last = false;
  std::string progress = "auto";      // "auto", "always", "never"
  std::string precision = "float32";  // "float32", "bf16" (TrainerOptions::bf16_products)
  // > 0: train for this many optimizer steps instead of epochs (text data: 2000 when not set).
  std::int64_t iterations = 0;
  // With iterations: steps between evaluations (text data: 250 when not set); 0: at the end of
  // every pass over the data.
  std::int64_t eval_every = 0;
  std::int64_t eval_iters = 20;            // text data: batches of each split per evaluation
  std::int64_t gradient_accumulation = 1;  // batches per optimizer step
  // Batches computed in this many row shards at once on replicas sharing the weights (in-process
  // data parallelism); 0: automatic (TrainerOptions::shards), 1: off.
  std::int64_t shards = 0;
  // Text data: steps between samples of generated text written to samples.jsonl in the run
  // folder (what `lathe board` shows); 0: none.
  std::int64_t sample_every = 0;
};

struct RunConfig {
  std::filesystem::path source;  // the config file
  DataConfig data;
  PreprocessConfig preprocess;
  AugmentConfig augment;
  // The model's spec, validated through the layer registry with defaults filled in:
  // {"type": "sequential", "layers": [...]} for [model] layers = [...], or a registered type's
  // spec for [model] type = "gpt" (say) and its arguments. Arguments the data decides (a
  // language model's vocab_size) are left out; run_training fills them in.
  nlohmann::json model;
  // Where each model layer was given ("config.toml:14", "--set"): one per layer of a
  // "sequential" spec, one for a registered type's [model]. Errors about a layer name it.
  std::vector<std::string> model_sources;
  std::string loss = "cross_entropy";  // or "mse"
  double label_smoothing = 0;          // cross_entropy only, in [0, 1)
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainerConfig trainer;
  nlohmann::json to_json() const;  // the resolved configuration, for the run directory
};

// Parses and validates a config file. Data paths in the file are relative to the file's folder;
// paths given with --set, and output_dir, are relative to the working directory.
RunConfig load_run_config(const std::filesystem::path& path,
                          const std::vector<std::string>& overrides = {});
// The same on TOML text already in memory: `where` names it in errors (as the file path would)
// and relative data paths are taken from `base_dir`.
RunConfig parse_run_config(std::string_view text, const std::string& where,
                           const std::filesystem::path& base_dir,
                           const std::vector<std::string>& overrides = {});

// docs/config.md: every section and key with its type, default, allowed values and meaning, and
// the registered model types with their arguments; generated from the tables the reader
// validates against (`lathe config-reference` prints it).
std::string config_reference();

}  // namespace lathe
