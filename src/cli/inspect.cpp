// `lathe inspect BUNDLE [--json]`: what a saved model bundle holds (format, layers, tensors,
// preprocessing, task, training metrics).
#include <iostream>

#include "lathe/predict_io.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct InspectOptions {
  std::string bundle;
  bool json = false;
};

void run_inspect(const InspectOptions& options) {
  const nlohmann::json description = describe_bundle(options.bundle);
  std::cout << (options.json ? description.dump(2) + "\n" : format_bundle_description(description))
            << std::flush;
}

}  // namespace

void add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* inspect = app.add_subcommand("inspect", "Describe a saved model bundle");
  inspect
      ->add_option("bundle", options->bundle,
                   "a model bundle written by lathe train or lathe import, or an .onnx file")
      ->required();
  inspect->add_flag("--json", options->json, "print one JSON object instead of text");
  inspect->callback([options] { run_inspect(*options); });
}

}  // namespace lathe::cli
