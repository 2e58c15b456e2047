// The `lathe` command. Each verb lives in its own file; this only wires them together.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "lathe/error.h"
#include "lathe/version.h"
#include "src/cli/commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lathe: train, evaluate and deploy neural networks in C++"};
  app.set_version_flag("--version", [] { return lathe::build_info(); });
  app.require_subcommand(1);
  lathe::cli::add_train_command(app);
  lathe::cli::add_eval_command(app);
  lathe::cli::add_predict_command(app);
  lathe::cli::add_inspect_command(app);
  lathe::cli::add_export_command(app);
  lathe::cli::add_serve_command(app);
  lathe::cli::add_demo_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const lathe::Error& e) {
    std::fprintf(stderr, "lathe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lathe: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
