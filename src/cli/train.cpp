// `lathe train CONFIG.toml`: runs the configured pipeline and saves a bundle.
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <iostream>

#include "lathe/distributed.h"
#include "lathe/run.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct TrainOptions {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
};

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_interrupt(int) {
  if (g_interrupted) {  // a second Ctrl-C: stop at once
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
    return;
  }
  g_interrupted = 1;
  static const char message[] =
      "\nlathe train: SIGINT: stopping after this step (Ctrl-C again to quit at once)\n";
  [[maybe_unused]] const ssize_t written = ::write(STDERR_FILENO, message, sizeof message - 1);
}

// Ctrl-C in a one-process run ends training after the step in progress, so the run folder says
// "stopped" (status.json) and the last checkpoint stays whole; the previous handler comes back
// afterwards. Under mpirun SIGINT keeps its default action: every rank must stop together.
class StopOnInterrupt {
 public:
  StopOnInterrupt() : installed_(!ProcessGroup::world().distributed()) {
    if (installed_) previous_ = std::signal(SIGINT, on_interrupt);
  }
  ~StopOnInterrupt() {
    if (installed_) std::signal(SIGINT, previous_);
  }
  static bool requested() { return g_interrupted != 0; }

 private:
  bool installed_;
  void (*previous_)(int) = SIG_DFL;
};

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* train = app.add_subcommand(
      "train",
      "Train a model from a TOML config; writes checkpoints, metrics.jsonl, train_log.jsonl, "
      "curves.svg, status.json, config.json and a model bundle to trainer.output_dir (what "
      "`lathe board` shows). Every config key: docs/config.md (or `lathe config-reference`). "
      "Ctrl-C stops after the current step and writes a checkpoint there; --resume continues "
      "from the last checkpoint (written at every evaluation, and at a stop), as if the run "
      "had not stopped. Under `mpirun -np N` it trains data-parallel (docs/distributed.md)");
  train->add_option("config", options->config, "the run configuration (TOML)")->required();
  train->add_option("--set", options->overrides,
                    "override a config key, e.g. --set trainer.epochs=2 (repeatable; list items "
                    "by index: model.layers.1.out=256)");
  train->add_flag("--resume", options->resume,
                  "continue from the checkpoint in trainer.output_dir");
  train->callback([options] {
    const RunConfig config = load_run_config(options->config, options->overrides);
    StopOnInterrupt interrupt;
    try {
      run_training(config, options->resume, std::cout, &StopOnInterrupt::requested);
    } catch (const TrainingStopped& e) {
      std::cerr << fmt::format("lathe train: {}\n", e.what());
      throw CLI::RuntimeError(130);  // the shell's code for a command ended by SIGINT
    }
  });
}

}  // namespace lathe::cli
