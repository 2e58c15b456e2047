// `lathe import MODEL.onnx BUNDLE.safetensors`: a model made elsewhere (PyTorch, Keras,
// scikit-learn, lathe export) as a lathe bundle, so predict, eval, serve, inspect and fine-tuning
// take it like a model lathe trained. See docs/onnx_import.md.
#include <fmt/format.h>

#include <iostream>
#include <sstream>

#include "lathe/onnx_import.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct ImportOptions {
  std::string model, bundle;
  OnnxImportOptions import;
  std::string classes;
  double scale = 1.0, mean = 0.0, std = 1.0;
};

// "flatten, linear 784->128, relu, ..." for the import line.
std::string describe_layers(const nlohmann::json& spec) {
  std::vector<std::string> parts;
  for (const auto& layer : spec.value("layers", nlohmann::json::array())) {
    const std::string type = layer.value("type", "?");
    parts.push_back(layer.contains("in") && layer.contains("out")
                        ? fmt::format("{} {}->{}", type, layer["in"].dump(), layer["out"].dump())
                        : type);
  }
  return fmt::format("{}", fmt::join(parts, ", "));
}

void run_import(ImportOptions options) {
  if (!options.classes.empty()) {
    std::string name;
    for (std::istringstream list(options.classes); std::getline(list, name, ',');)
      options.import.classes.push_back(name);
  }
  if (options.std <= 0) throw Error(fmt::format("--std must be positive, got {}", options.std));
  options.import.preprocessing = Preprocessing::normalize(options.scale, options.mean, options.std);
  const LoadedBundle bundle = import_onnx(options.model, options.import);
  save_bundle(options.bundle, *bundle.model, bundle.info);
  const auto& task = bundle.info.task;
  const auto& metrics = bundle.info.metrics;
  std::cout << fmt::format(
      "Wrote {}: {} from {} ({} parameters), input [N,{}], output '{}'{}\n  {}\n", options.bundle,
      task["task"].get<std::string>(), options.model, bundle.model->parameter_count(),
      fmt::join(task["input_shape"].get<std::vector<std::int64_t>>(), ","),
      metrics["output"].get<std::string>(),
      task.contains("classes") ? fmt::format(", {} classes", task["classes"].size()) : "",
      metrics.contains("lowered_to_layers")
          ? "as lathe layers: " + describe_layers(bundle.info.architecture)
          : "as an ONNX graph (onnx_graph)" +
                (metrics.contains("graph_kept_because")
                     ? ": no lathe layer form, " + metrics["graph_kept_because"].get<std::string>()
                     : std::string()));
}

}  // namespace

void add_import_command(CLI::App& app) {
  auto options = std::make_shared<ImportOptions>();
  CLI::App* command = app.add_subcommand(
      "import",
      "Make a lathe bundle of an ONNX model (then predict, eval, serve, inspect or export it)");
  command->add_option("model", options->model, "the .onnx file")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("bundle", options->bundle, "the bundle to write (.safetensors)")->required();
  command
      ->add_option("--task", options->import.task,
                   "classification, regression, or auto (classification when the output has "
                   "more than one column)")
      ->check(CLI::IsMember({"auto", "classification", "regression"}))
      ->capture_default_str();
  command->add_option("--classes", options->classes,
                      "class names in output order, comma-separated (default 0,1,...)");
  command->add_option("--input", options->import.input, "the graph input (default: the first)");
  command->add_option("--output", options->import.output,
                      "the graph output, or any value inside the graph (default: the first "
                      "output; a classifier's Softmax output is replaced by its input, the "
                      "logits)");
  command->add_flag("--keep-graph", options->import.keep_graph,
                    "keep the ONNX graph as it is, even where lathe's own layers can express it");
  command
      ->add_option("--scale", options->scale,
                   "preprocessing: raw inputs are multiplied by this (1/255 for 0-255 pixels)")
      ->capture_default_str();
  command->add_option("--mean", options->mean, "preprocessing: then this is subtracted")
      ->capture_default_str();
  command->add_option("--std", options->std, "preprocessing: then the result is divided by this")
      ->capture_default_str();
  command->callback([options] { run_import(*options); });
}

}  // namespace lathe::cli
