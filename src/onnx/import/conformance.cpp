// The ONNX backend test suite's cases run through OnnxGraph: model.onnx, then every
// test_data_set_*, inputs in the graph's input order and outputs compared with onnx's
// tolerances (|actual - expected| <= atol + rtol * |expected|, NaN equal to NaN).
#include <algorithm>
#include <cmath>

#include "lathe/safetensors.h"
#include "src/io/file_bytes.h"
#include "src/onnx/import/graph.h"
#include "src/onnx/import/half.h"
#include "src/onnx/import/tensor_proto.h"

namespace lathe {

namespace {

namespace fs = std::filesystem;

bool is_case(const fs::path& dir) {
  return fs::is_regular_file(dir / "model.onnx");
}

std::vector<fs::path> sorted_children(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(dir))
    if (directories ? entry.is_directory() : entry.is_regular_file()) out.push_back(entry.path());
  std::sort(out.begin(), out.end());
  return out;
}

// Files named <prefix>_<N>.pb in N order (input_10 after input_9).
std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<long, fs::path>> found;
  for (const auto& file : sorted_children(dir, false)) {
    const std::string name = file.filename().string();
    if (name.rfind(prefix + "_", 0) != 0 || file.extension() != ".pb") continue;
    try {
      found.emplace_back(std::stol(name.substr(prefix.size() + 1)), file);
    } catch (const std::exception&) {
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [_, file] : found) out.push_back(file);
  return out;
}

std::vector<std::string> model_operators(const fs::path& model_path) {
  onnx::ModelProto model;
  const auto raw = detail::read_raw_file(model_path);
  std::vector<std::string> ops;
  if (!model.ParseFromArray(raw.data(), static_cast<int>(raw.size()))) return ops;
  for (const auto& node : model.graph().node())
    if (std::find(ops.begin(), ops.end(), node.op_type()) == ops.end())
      ops.push_back(node.op_type());
  std::sort(ops.begin(), ops.end());
  return ops;
}

// ONNX 1.12's test data stores bfloat16 tensors as uint16 (numpy has no bfloat16): the bits of
// such a tensor are read as the bfloat16 values they are.
OnnxValue as_bfloat16_if_stored_as_uint16(OnnxValue value, OnnxType wanted) {
  if (wanted != OnnxType::Bfloat16 || value.type != OnnxType::Uint16) return value;
  Tensor out = Tensor::empty(value.shape(), DType::Float32);
  const std::int64_t* bits = value.tensor.data<std::int64_t>();
  for (std::int64_t k = 0; k < out.numel(); ++k)
    out.data<float>()[k] = onnx_detail::bfloat16_to_float(static_cast<std::uint16_t>(bits[k]));
  return {out, OnnxType::Bfloat16};
}

// Empty when `actual` matches `expected`, otherwise what differs.
std::string compare(const OnnxValue& actual, const OnnxValue& expected, std::size_t index,
                    const OnnxConformanceOptions& options) {
  if (actual.type != expected.type)
    return fmt::format("output {}: type {} instead of {}", index, onnx_type_name(actual.type),
                       onnx_type_name(expected.type));
  if (actual.shape() != expected.shape())
    return fmt::format("output {}: shape {} instead of {}", index, shape_str(actual.shape()),
                       shape_str(expected.shape()));
  const std::vector<double> a = actual.tensor.to_vector();
  const std::vector<double> e = expected.tensor.to_vector();
  double worst = 0;
  std::size_t worst_at = 0;
  bool bad = false;
  for (std::size_t k = 0; k < a.size(); ++k) {
    if (std::isnan(a[k]) && std::isnan(e[k])) continue;
    if (a[k] == e[k]) continue;  // equal infinities included
    const double diff = std::abs(a[k] - e[k]);
    if (!(diff <= options.atol + options.rtol * std::abs(e[k]))) {
      if (!bad || diff > worst || std::isnan(diff)) {
        worst = diff;
        worst_at = k;
      }
      bad = true;
    }
  }
  if (!bad) return {};
  return fmt::format("output {}: max diff {:.3g} at element {} ({} instead of {})", index, worst,
                     worst_at, a[worst_at], e[worst_at]);
}

OnnxCaseResult run_case(const fs::path& dir, const OnnxConformanceOptions& options) {
  OnnxCaseResult result;
  result.folder = dir.parent_path().filename().string();
  result.name = dir.filename().string();
  result.operators = model_operators(dir / "model.onnx");
  using Status = OnnxCaseResult::Status;
  try {
    const auto raw = detail::read_raw_file(dir / "model.onnx");
    const OnnxGraph graph = OnnxGraph::parse(std::string(detail::as_chars(raw)), dir);
    const auto sets = sorted_children(dir, true);
    int ran = 0;
    for (const auto& set : sets) {
      if (set.filename().string().rfind("test_data_set_", 0) != 0) continue;
      const auto input_files = numbered(set, "input");
      const auto output_files = numbered(set, "output");
      if (input_files.size() > graph.inputs().size())
        throw Error(fmt::format("{} gives {} inputs, the model has {}", set.filename().string(),
                                input_files.size(), graph.inputs().size()));
      std::map<std::string, OnnxValue> inputs;
      for (std::size_t k = 0; k < input_files.size(); ++k)
        inputs[graph.inputs()[k].name] = as_bfloat16_if_stored_as_uint16(
            read_onnx_tensor_file(input_files[k]), graph.inputs()[k].type);
      const std::vector<OnnxValue> outputs = graph.run(inputs);
      if (outputs.size() != output_files.size())
        throw Error(fmt::format("{} outputs, {} expected", outputs.size(), output_files.size()));
      for (std::size_t k = 0; k < outputs.size(); ++k) {
        const OnnxValue expected = as_bfloat16_if_stored_as_uint16(
            read_onnx_tensor_file(output_files[k]), outputs[k].type);
        const std::string diff = compare(outputs[k], expected, k, options);
        if (!diff.empty()) {
          result.status = Status::Fail;
          result.detail = fmt::format("{}: {}", set.filename().string(), diff);
          return result;
        }
      }
      ++ran;
    }
    if (ran == 0) throw Error("no test_data_set_* folder");
    result.status = Status::Pass;
  } catch (const OnnxUnsupported& e) {
    result.status = Status::Unsupported;
    result.detail = e.what();
  } catch (const std::exception& e) {
    result.status = Status::Fail;
    result.detail = e.what();
  }
  return result;
}

}  // namespace

const char* onnx_case_status_name(OnnxCaseResult::Status status) {
  switch (status) {
    case OnnxCaseResult::Status::Pass:
      return "pass";
    case OnnxCaseResult::Status::Unsupported:
      return "unsupported";
    case OnnxCaseResult::Status::Fail:
      break;
  }
  return "fail";
}

std::vector<OnnxCaseResult> run_onnx_conformance(const fs::path& root,
                                                 const OnnxConformanceOptions& options) {
  if (!fs::is_directory(root))
    throw Error(fmt::format("{}: not a folder of ONNX test cases", root.string()));
  std::vector<fs::path> cases;
  if (is_case(root)) {
    cases.push_back(root);
  } else {
    for (const auto& child : sorted_children(root, true)) {
      if (is_case(child)) {
        cases.push_back(child);
        continue;
      }
      for (const auto& grandchild : sorted_children(child, true))
        if (is_case(grandchild)) cases.push_back(grandchild);
    }
  }
  if (cases.empty())
    throw Error(fmt::format("{}: no test cases (folders with a model.onnx) found", root.string()));
  std::vector<OnnxCaseResult> results;
  for (const auto& dir : cases) results.push_back(run_case(dir, options));
  return results;
}

OnnxConformanceSummary summarize_onnx_conformance(const std::vector<OnnxCaseResult>& results) {
  OnnxConformanceSummary summary;
  auto add = [](OnnxConformanceCount& count, OnnxCaseResult::Status status) {
    switch (status) {
      case OnnxCaseResult::Status::Pass:
        ++count.pass;
        break;
      case OnnxCaseResult::Status::Fail:
        ++count.fail;
        break;
      case OnnxCaseResult::Status::Unsupported:
        ++count.unsupported;
        break;
    }
  };
  for (const auto& r : results) {
    add(summary.total, r.status);
    add(summary.by_folder[r.folder], r.status);
    if (r.folder == "node")
      for (const auto& op : r.operators) add(summary.by_operator[op], r.status);
  }
  return summary;
}

namespace {

std::string count_line(const std::string& label, const OnnxConformanceCount& c) {
  return fmt::format("{}: {}/{} pass ({:.1f}%), {} fail, {} unsupported\n", label, c.pass,
                     c.total(), c.total() ? 100.0 * c.pass / c.total() : 0.0, c.fail,
                     c.unsupported);
}

}  // namespace

std::string format_onnx_conformance_totals(const OnnxConformanceSummary& summary) {
  std::string out;
  for (const auto& [folder, count] : summary.by_folder) out += count_line(folder, count);
  return out + count_line("total", summary.total);
}

std::string onnx_conformance_markdown(const OnnxConformanceSummary& summary) {
  std::string out =
      "# ONNX conformance\n\n"
      "Generated by `lathe onnx-conformance --markdown docs/onnx_conformance.md` on Debian's\n"
      "`libonnx-testdata` (ONNX 1.12's backend test cases); the ctest `onnx_conformance` fails\n"
      "when this file is not what the command writes. A case passes only if every output of every\n"
      "test data set matches (rtol 1e-3, atol 1e-7). How to read a failure or an unsupported\n"
      "case: docs/onnx_import.md.\n\n"
      "## Totals\n\n| folder | cases | pass | fail | unsupported | pass rate |\n"
      "|---|---|---|---|---|---|\n";
  auto row = [](const std::string& label, const OnnxConformanceCount& c) {
    return fmt::format("| {} | {} | {} | {} | {} | {:.1f}% |\n", label, c.total(), c.pass, c.fail,
                       c.unsupported, c.total() ? 100.0 * c.pass / c.total() : 0.0);
  };
  for (const auto& [folder, count] : summary.by_folder) out += row(folder, count);
  out += row("**all**", summary.total);
  out +=
      "\n## By operator (node cases)\n\n"
      "A case counts once for every operator its model uses, so the rows add up to more than the\n"
      "node total.\n\n| operator | cases | pass | fail | unsupported | pass rate |\n"
      "|---|---|---|---|---|---|\n";
  for (const auto& [op, count] : summary.by_operator) out += row(op, count);
  return out;
}

void write_onnx_conformance_markdown(const std::filesystem::path& path,
                                     const OnnxConformanceSummary& summary) {
  write_file_atomically(path, onnx_conformance_markdown(summary));
}

}  // namespace lathe
