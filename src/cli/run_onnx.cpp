// `lathe run MODEL.onnx --input NAME=FILE ... --output-dir DIR`: an ONNX model from anywhere run
// on TensorProto (.pb) or NumPy (.npy) inputs, one output_N.pb per graph output, as ONNX
// Runtime's onnx_test_runner reads and writes them. See docs/onnx_import.md.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "lathe/onnx_import.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct RunOptions {
  std::string model;
  std::vector<std::string> inputs;
  std::string output_dir;
};

void run_model(const RunOptions& options) {
  const OnnxGraph graph = OnnxGraph::load(options.model);
  std::map<std::string, OnnxValue> inputs;
  std::size_t positional = 0;
  for (const std::string& spec : options.inputs) {
    const auto eq = spec.find('=');
    std::string name, file;
    if (eq == std::string::npos) {  // FILE alone: the next graph input in order
      if (positional >= graph.inputs().size())
        throw Error(
            fmt::format("--input {}: the model has only {} inputs", spec, graph.inputs().size()));
      name = graph.inputs()[positional++].name;
      file = spec;
    } else {
      name = spec.substr(0, eq);
      file = spec.substr(eq + 1);
    }
    bool known = false;
    for (const auto& io : graph.inputs()) known = known || io.name == name;
    if (!known) {
      std::vector<std::string> names;
      for (const auto& io : graph.inputs()) names.push_back(io.describe());
      throw Error(fmt::format("--input {}: the model has no input '{}'; its inputs are: {}", spec,
                              name, fmt::join(names, ", ")));
    }
    if (!inputs.emplace(name, read_onnx_tensor_file(file)).second)
      throw Error(fmt::format("--input {}: input '{}' is given twice", spec, name));
  }
  for (const auto& io : graph.inputs())
    if (!inputs.count(io.name))
      throw Error(fmt::format("input '{}' is not given: add --input {}=FILE.pb (or .npy)",
                              io.describe(), io.name));
  const std::vector<OnnxValue> outputs = graph.run(inputs);
  std::filesystem::create_directories(options.output_dir);
  for (std::size_t k = 0; k < outputs.size(); ++k) {
    const auto path = std::filesystem::path(options.output_dir) / fmt::format("output_{}.pb", k);
    write_onnx_tensor_file(path, outputs[k], graph.outputs()[k].name);
    std::cout << fmt::format("{}: {} {} {}\n", path.string(), graph.outputs()[k].name,
                             onnx_type_name(outputs[k].type), shape_str(outputs[k].shape()));
  }
}

struct ConformanceOptions {
  std::string data_dir = "/usr/share/libonnx-testdata/data";
  std::string expect_pass;
  std::string markdown;
  bool quiet = false;
};

// A sorted "folder/case" list, one per line, '#' comments allowed.
std::set<std::string> read_case_list(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(fmt::format("{}: cannot open", path));
  std::set<std::string> cases;
  for (std::string line; std::getline(in, line);) {
    line = line.substr(0, line.find('#'));
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) cases.insert(line);
  }
  return cases;
}

int run_conformance(const ConformanceOptions& options) {
  const auto results = run_onnx_conformance(options.data_dir);
  for (const auto& r : results)
    if (!options.quiet || r.status == OnnxCaseResult::Status::Fail)
      std::cout << fmt::format("{}/{}: {}{}{}\n", r.folder, r.name, onnx_case_status_name(r.status),
                               r.detail.empty() ? "" : ": ", r.detail);
  const OnnxConformanceSummary summary = summarize_onnx_conformance(results);
  std::cout << format_onnx_conformance_totals(summary);
  if (!options.markdown.empty()) write_onnx_conformance_markdown(options.markdown, summary);
  if (options.expect_pass.empty()) return 0;
  int missing = 0;
  std::set<std::string> passed;
  for (const auto& r : results)
    if (r.status == OnnxCaseResult::Status::Pass) passed.insert(r.folder + "/" + r.name);
  for (const std::string& name : read_case_list(options.expect_pass))
    if (!passed.count(name)) {
      std::cout << fmt::format("expected to pass but did not: {}\n", name);
      ++missing;
    }
  if (missing > 0) {
    std::cout << fmt::format("{} case(s) of {} no longer pass\n", missing, options.expect_pass);
    return 1;
  }
  std::cout << fmt::format("every case listed in {} passes\n", options.expect_pass);
  return 0;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto options = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand(
      "run", "Run an ONNX model on TensorProto (.pb) or NumPy (.npy) inputs, writing output_N.pb");
  command->add_option("model", options->model, "the .onnx file")
      ->required()
      ->check(CLI::ExistingFile);
  command
      ->add_option("--input,-i", options->inputs,
                   "NAME=FILE.pb or NAME=FILE.npy, once per graph input (FILE alone takes the "
                   "inputs in the model's order)")
      ->check(CLI::Validator(
          [](std::string& spec) {
            const auto eq = spec.find('=');
            const std::string file = eq == std::string::npos ? spec : spec.substr(eq + 1);
            return std::filesystem::is_regular_file(file) ? std::string() : "no such file: " + file;
          },
          "NAME=FILE"));
  command->add_option("--output-dir,-o", options->output_dir, "where output_0.pb ... are written")
      ->required();
  command->callback([options] { run_model(*options); });
}

void add_onnx_conformance_command(CLI::App& app) {
  auto options = std::make_shared<ConformanceOptions>();
  CLI::App* command = app.add_subcommand(
      "onnx-conformance",
      "Run the ONNX backend test cases (Debian's libonnx-testdata) through lathe's ONNX import");
  command
      ->add_option("data_dir", options->data_dir,
                   "a folder of case folders (node/, simple/ ...), a folder of cases, or one "
                   "case")
      ->capture_default_str()
      ->check(CLI::ExistingDirectory);
  command
      ->add_option("--expect-pass", options->expect_pass,
                   "a file listing folder/case names that must pass; exits 1 if any does not")
      ->check(CLI::ExistingFile);
  command->add_option("--markdown", options->markdown,
                      "write the table by operator and the totals per folder to this file");
  command->add_flag("--quiet,-q", options->quiet, "print only failures and the totals");
  command->callback([options] {
    const int code = run_conformance(*options);
    if (code != 0) throw CLI::RuntimeError(code);
  });
}

}  // namespace lathe::cli
