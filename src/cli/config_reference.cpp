// `lathe config-reference`: every config key and model type, as docs/config.md holds them.
#include <iostream>

#include "lathe/config.h"
#include "src/cli/commands.h"

namespace lathe::cli {

void add_config_reference_command(CLI::App& app) {
  CLI::App* command = app.add_subcommand(
      "config-reference",
      "Print every config section and key (type, default, allowed values, meaning) and the "
      "model types with their arguments, as Markdown (docs/config.md)");
  command->callback([] { std::cout << config_reference() << std::flush; });
}

}  // namespace lathe::cli
