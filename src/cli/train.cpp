// `lathe train CONFIG.toml`: runs the configured pipeline and saves a bundle.
#include <iostream>

#include "lathe/run.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct TrainOptions {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
};

}  // namespace

void add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainOptions>();
  CLI::App* train = app.add_subcommand(
      "train",
      "Train a model from a TOML config; writes checkpoints, metrics.jsonl, curves.svg "
      "and a model bundle to trainer.output_dir. Every config key: docs/config.md (or `lathe "
      "config-reference`). Under `mpirun -np N` it trains data-parallel (docs/distributed.md)");
  train->add_option("config", options->config, "the run configuration (TOML)")->required();
  train->add_option("--set", options->overrides,
                    "override a config key, e.g. --set trainer.epochs=2 (repeatable; list items "
                    "by index: model.layers.1.out=256)");
  train->add_flag("--resume", options->resume,
                  "continue from the checkpoint in trainer.output_dir");
  train->callback([options] {
    run_training(load_run_config(options->config, options->overrides), options->resume, std::cout);
  });
}

}  // namespace lathe::cli
