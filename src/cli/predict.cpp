// `lathe predict BUNDLE INPUT... [--format csv|json] [--output FILE] [--batch-size N]`: the
// predictions of a saved model for IDX, CSV, JSON and image files, as CSV or JSON.
#include <fmt/format.h>

#include <iostream>

#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/predict_io.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct PredictOptions {
  std::string bundle;
  std::vector<std::string> inputs;
  std::string format;  // empty: json when --output ends in .json, else csv
  std::string output;
  std::int64_t batch_size = 256;
  std::string precision = "float32";
};

OutputFormat output_format(const PredictOptions& options) {
  if (options.format == "json") return OutputFormat::Json;
  if (options.format == "csv") return OutputFormat::Csv;
  return std::filesystem::path(options.output).extension() == ".json" ? OutputFormat::Json
                                                                      : OutputFormat::Csv;
}

void run_predict(const PredictOptions& options) {
  // A bad --output is reported before any work, not after the predictions are made.
  if (!options.output.empty()) {
    const std::filesystem::path folder = std::filesystem::path(options.output).parent_path().empty()
                                             ? std::filesystem::path(".")
                                             : std::filesystem::path(options.output).parent_path();
    if (!std::filesystem::is_directory(folder))
      throw Error(fmt::format("{}: cannot write: the folder {} does not exist", options.output,
                              folder.string()));
    if (std::filesystem::is_directory(options.output))
      throw Error(fmt::format("{}: cannot write: it is a folder", options.output));
  }
  check_bundle_signature(options.bundle);
  const Predictor predictor =
      Predictor::load(options.bundle, precision_from_name(options.precision));
  const std::vector<std::filesystem::path> paths(options.inputs.begin(), options.inputs.end());
  const PredictionInputs inputs = read_prediction_inputs(paths, InputSpec::of(predictor));
  const Tensor outputs = predict_in_batches(predictor, inputs.inputs, options.batch_size);
  const std::string text =
      format_predictions(predictor, inputs.sources, outputs, output_format(options));
  if (options.output.empty()) {
    std::cout << text << std::flush;
    return;
  }
  try {
    write_file_atomically(options.output, text);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot write the predictions: {}", options.output, e.what()));
  }
  const std::size_t count = inputs.sources.size();
  std::cout << fmt::format("Wrote {} prediction{} to {}\n", count, count == 1 ? "" : "s",
                           options.output);
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto options = std::make_shared<PredictOptions>();
  CLI::App* predict =
      app.add_subcommand("predict", "Predict with a saved model bundle on unlabeled inputs");
  predict
      ->add_option("bundle", options->bundle,
                   "a model bundle written by lathe train or lathe import, or an .onnx file")
      ->required();
  predict
      ->add_option("inputs", options->inputs,
                   "IDX images (raw or .gz), CSV, JSON (array of examples), PNG/JPEG images")
      ->required();
  predict
      ->add_option("--format", options->format,
                   "csv or json (default: json if --output ends in .json, else csv)")
      ->check(CLI::IsMember({"csv", "json"}));
  predict->add_option("-o,--output", options->output,
                      "write to this file (atomically) instead of standard output");
  predict->add_option("--batch-size", options->batch_size, "examples per forward pass")
      ->check(kPositive)
      ->capture_default_str();
  add_precision_option(predict, options->precision);
  predict->callback([options] { run_predict(*options); });
}

}  // namespace lathe::cli
