#pragma once
// One function per verb of the `lathe` command; main.cpp wires them to CLI11.
#include <CLI/CLI.hpp>

namespace lathe::cli {

// `lathe demo`: a tiny end-to-end run of the core (autograd + SGD) on generated data.
void add_demo_command(CLI::App& app);
// `lathe train CONFIG.toml [--set key=value]... [--resume]`
void add_train_command(CLI::App& app);
// `lathe eval BUNDLE DATA...`
void add_eval_command(CLI::App& app);
// `lathe predict BUNDLE INPUT... [--format csv|json] [--output FILE] [--batch-size N]`
void add_predict_command(CLI::App& app);
// `lathe generate BUNDLE --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--seed S]`
void add_generate_command(CLI::App& app);
// `lathe inspect BUNDLE [--json]`
void add_inspect_command(CLI::App& app);
// `lathe export BUNDLE MODEL.onnx`
void add_export_command(CLI::App& app);
// `lathe serve BUNDLE... [--port N] ...`
void add_serve_command(CLI::App& app);

}  // namespace lathe::cli
