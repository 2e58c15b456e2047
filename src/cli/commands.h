#pragma once
// One function per verb of the `lathe` command; main.cpp wires them to CLI11.
#include <CLI/CLI.hpp>

#include <string>

namespace lathe::cli {

// Checks for numeric options that say what they want when they refuse a value
// ("--batch-size: must be more than 0, got 0"): CLI11's PositiveNumber and NonNegativeNumber
// print a range up to the largest double, 309 digits long.
inline CLI::Validator number_check(bool (*accepts)(double), const char* wanted,
                                   const char* description) {
  return CLI::Validator(
      [accepts, wanted](std::string& text) -> std::string {
        double value = 0;
        if (!CLI::detail::lexical_cast(text, value)) return "'" + text + "' is not a number";
        return accepts(value) ? std::string() : std::string(wanted) + ", got " + text;
      },
      description);
}
inline const CLI::Validator kPositive =
    number_check([](double v) { return v > 0; }, "must be more than 0", "POSITIVE");
inline const CLI::Validator kNonNegative =
    number_check([](double v) { return v >= 0; }, "must be 0 or more", "NONNEGATIVE");

// `--precision float32|int8` of the commands that run a classifier or regression model
// (lathe::InferencePrecision; lathe::precision_from_name reads the value).
inline CLI::Option* add_precision_option(CLI::App* command, std::string& precision) {
  return command
      ->add_option("--precision", precision,
                   "float32, or int8: weights and each example's inputs quantized to 8 bits "
                   "(faster; check the accuracy with lathe eval --precision int8)")
      ->check(CLI::IsMember({"float32", "int8"}))
      ->capture_default_str();
}

// `lathe demo`: a tiny end-to-end run of the core (autograd + SGD) on generated data.
void add_demo_command(CLI::App& app);
// `lathe train CONFIG.toml [--set key=value]... [--resume]`
void add_train_command(CLI::App& app);
// `lathe config-reference`: docs/config.md, from the tables the config reader checks with.
void add_config_reference_command(CLI::App& app);
// `lathe eval BUNDLE DATA... [--precision float32|int8]`
void add_eval_command(CLI::App& app);
// `lathe predict BUNDLE INPUT... [--format csv|json] [--output FILE] [--batch-size N]
//                [--precision float32|int8]`
void add_predict_command(CLI::App& app);
// `lathe generate BUNDLE --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--seed S]`
void add_generate_command(CLI::App& app);
// `lathe inspect BUNDLE [--json]`
void add_inspect_command(CLI::App& app);
// `lathe export BUNDLE MODEL.onnx`
void add_export_command(CLI::App& app);
// `lathe import MODEL.onnx BUNDLE.safetensors [--task ...] [--classes ...] [--scale ...] ...`
void add_import_command(CLI::App& app);
// `lathe run MODEL.onnx --input NAME=FILE.pb ... --output-dir DIR`
void add_run_command(CLI::App& app);
// `lathe onnx-conformance [DATA_DIR] [--expect-pass FILE] [--markdown FILE]`
void add_onnx_conformance_command(CLI::App& app);
// `lathe serve BUNDLE... [--port N] ...`
void add_serve_command(CLI::App& app);
// `lathe board [RUNS_DIR] [--port N] [--host ADDRESS]`
void add_board_command(CLI::App& app);

}  // namespace lathe::cli
