// The `lathe` command. Each verb lives in its own file; this only wires them together.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "lathe/distributed.h"
#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/onnx_import.h"
#include "lathe/version.h"
#include "src/cli/commands.h"

namespace {

// In a job of several processes, the others may be waiting for this one inside a collective:
// name the rank and end them all rather than leave them hanging.
void fail_distributed_job(const std::string& message, int exit_code) {
  lathe::ProcessGroup* processes = lathe::ProcessGroup::world_if_started();
  if (processes && processes->distributed()) processes->abort(message, exit_code);
}

// LATHE_PLUGINS: plugins to load before anything else, separated by ':'.
void load_plugins_from_environment() {
  const char* list = std::getenv("LATHE_PLUGINS");
  if (!list) return;
  std::istringstream paths(list);
  for (std::string path; std::getline(paths, path, ':');)
    if (!path.empty()) lathe::load_plugin(path);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lathe: train, evaluate and deploy neural networks in C++"};
  app.set_version_flag("--version", [] { return lathe::build_info(); });
  app.require_subcommand(1);
  app.add_option_function<std::string>(
         "--plugin", [](const std::string& path) { lathe::load_plugin(path); },
         "a shared library that registers model types (lathe::register_layer_type), so bundles "
         "of a program's own modules load; repeatable; also LATHE_PLUGINS=a.so:b.so "
         "(docs/custom_modules.md)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->trigger_on_parse();
  app.fallthrough();  // --plugin after the verb too: `lathe predict --plugin x.so ...`
  lathe::cli::add_train_command(app);
  lathe::cli::add_config_reference_command(app);
  lathe::cli::add_eval_command(app);
  lathe::cli::add_predict_command(app);
  lathe::cli::add_generate_command(app);
  lathe::cli::add_inspect_command(app);
  lathe::cli::add_export_command(app);
  lathe::cli::add_import_command(app);
  lathe::cli::add_run_command(app);
  lathe::cli::add_onnx_conformance_command(app);
  lathe::cli::add_serve_command(app);
  lathe::cli::add_board_command(app);
  lathe::cli::add_demo_command(app);
  try {
#if LATHE_HAVE_MPI
    lathe::use_mpi();  // a job started by mpirun trains across its processes
#endif
    lathe::register_onnx_import();  // .onnx files load like bundles (docs/onnx_import.md)
    load_plugins_from_environment();
    app.parse(argc, argv);
  } catch (const CLI::RuntimeError& e) {
    return e.get_exit_code();  // a command's own exit status (130 after SIGINT), already explained
  } catch (const CLI::ParseError& e) {
    // --help and --version end the parse this way too; CLI11 prints what they ask for.
    if (e.get_exit_code() == static_cast<int>(CLI::ExitCodes::Success)) return app.exit(e);
    // A bad argument is one line and exit status 1, as every other error.
    const std::vector<CLI::App*> verbs = app.get_subcommands();
    std::fprintf(stderr, "lathe: error: %s; see lathe %s--help\n", e.what(),
                 verbs.empty() ? "" : (verbs.front()->get_name() + " ").c_str());
    return 1;
  } catch (const lathe::Error& e) {
    fail_distributed_job(e.what(), 1);
    std::fprintf(stderr, "lathe: error: %s\n", e.what());
    return 1;
  } catch (const std::filesystem::filesystem_error& e) {
    // The machine's files, not lathe's code: a folder where a file is, no permission, a full disk.
    fail_distributed_job(e.what(), 1);
    std::fprintf(stderr, "lathe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    fail_distributed_job(fmt::format("internal error: {}", e.what()), 2);
    std::fprintf(stderr, "lathe: internal error: %s\n", e.what());
    return 2;
  }
  return 0;
}
