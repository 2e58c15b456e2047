#pragma once
// The TOML run configuration of `lathe train`: data, preprocessing, augmentation, model, loss,
// optimizer, schedule, trainer. Unknown keys, wrong types and bad values are errors naming the
// file, the line, the key and what is allowed. `--set key=value` overrides any key before
// validation.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/gpt.h"

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
  std::string progress = "auto";  // "auto", "always", "never"
  // Language models train for iterations (optimizer steps) instead of epochs.
  std::int64_t iterations = 2000;
  std::int64_t eval_every = 250;           // iterations between train/validation loss estimates
  std::int64_t eval_iters = 20;            // batches per estimate
  std::int64_t gradient_accumulation = 1;  // batches per optimizer step
};

struct RunConfig {
  std::filesystem::path source;  // the config file
  DataConfig data;
  PreprocessConfig preprocess;
  AugmentConfig augment;
  std::string model_type = "layers";   // or "gpt" ([model] type = "gpt", with [data] "text")
  nlohmann::json layers;               // validated layer specs, defaults filled
  GPTConfig gpt;                       // model_type "gpt"; vocab_size comes from the tokenizer
  std::string loss = "cross_entropy";  // or "mse"
  double label_smoothing = 0;          // cross_entropy only, in [0, 1)
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainerConfig trainer;
  nlohmann::json to_json() const;     // the resolved configuration, for the run directory
  nlohmann::json model_json() const;  // its [model] part
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

}  // namespace lathe
