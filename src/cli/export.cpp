// `lathe export BUNDLE MODEL.onnx`: the bundle as an ONNX model that ONNX Runtime can run: a
// classifier or regression model on the same raw inputs as `lathe predict` (preprocessing
// included), a GPT language model on token ids (logits out). See docs/deploy/onnx.md.
#include <fmt/format.h>

#include <iostream>

#include "lathe/error.h"
#include "lathe/onnx.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct ExportOptions {
  std::string bundle;
  std::string output;
};

void run_export(const ExportOptions& options) {
  OnnxModel model;
  try {
    model = export_onnx(load_bundle(options.bundle), options.output);
  } catch (const Error& e) {
    const std::string message = e.what();
    if (message.rfind(options.bundle, 0) == 0) throw;
    throw Error(fmt::format("{}: {}", options.bundle, message));
  }
  std::vector<std::string> inputs, outputs;
  for (const OnnxTensorInfo& input : model.inputs)
    inputs.push_back(input.describe() + " " + input.type);
  for (const OnnxTensorInfo& output : model.outputs) outputs.push_back(output.describe());
  std::cout << fmt::format(
      "Wrote {} ({} bytes, ONNX IR {}, opset {}): {} nodes, {} initializers\n"
      "  {}{}\n  outputs: {}\n",
      options.output, model.bytes.size(), kOnnxIrVersion, kOnnxOpsetVersion, model.nodes,
      model.initializers, inputs.size() == 1 ? "input:   " : "inputs:  ", fmt::join(inputs, ", "),
      fmt::join(outputs, ", "));
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* command =
      app.add_subcommand("export",
                         "Export a saved model bundle to ONNX: a classifier or regression model "
                         "(raw inputs, preprocessing included), or a GPT language model (int64 "
                         "tokens [N, T] -> logits [N, T, vocab])");
  command
      ->add_option("bundle", options->bundle,
                   "a model bundle written by lathe train or lathe import, or an .onnx file")
      ->required()
      ->check(CLI::ExistingFile);
  command->add_option("output", options->output, "the ONNX file to write (replaced atomically)")
      ->required();
  command->callback([options] { run_export(*options); });
}

}  // namespace lathe::cli
