// The round trip of an exported model: reads what tests/onnx_reference.cpp wrote (raw inputs,
// float32 or int64 as the input's "dtype" says, and lathe's own outputs, reference.json), runs
// MODEL.onnx through lathe's ONNX import (lathe::OnnxGraph) on the same inputs and compares every
// output, with the tolerance rule of tests/onnx_runtime_compare.js ("absolute" outputs: |import -
// lathe| <= TOLERANCE; "relative" ones: <= TOLERANCE * (1 + the row's largest |lathe|)). Prints the
// largest differences; exit 0 on agreement, 1 otherwise.
//
//   onnx_import_compare REFERENCE_DIR MODEL.onnx [TOLERANCE]
#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <iostream>

#include "lathe/lathe.h"
#include "lathe/onnx_import.h"

namespace {

using lathe::Tensor;
using nlohmann::json;

Tensor read_floats(const std::filesystem::path& path, const lathe::Shape& shape) {
  Tensor out = Tensor::empty(shape);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data<float>()),
          static_cast<std::streamsize>(out.numel() * sizeof(float)));
  if (!in || in.peek() != EOF)
    throw lathe::Error(fmt::format("{}: not {} float32 values", path.string(), out.numel()));
  return out;
}

Tensor read_int64s(const std::filesystem::path& path, const lathe::Shape& shape) {
  Tensor out = Tensor::empty(shape, lathe::DType::Int64);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(out.data<std::int64_t>()),
          static_cast<std::streamsize>(out.numel() * sizeof(std::int64_t)));
  if (!in || in.peek() != EOF)
    throw lathe::Error(fmt::format("{}: not {} int64 values", path.string(), out.numel()));
  return out;
}

int run(const std::filesystem::path& dir, const std::filesystem::path& model, double tolerance) {
  std::ifstream reference_file(dir / "reference.json");
  const json reference = json::parse(reference_file);
  const lathe::OnnxGraph graph = lathe::OnnxGraph::load(model);
  const auto& input = reference["input"];
  const std::string dtype = input.value("dtype", "float32");
  if (dtype != "float32" && dtype != "int64")
    throw lathe::Error(fmt::format("input dtype {}: float32 or int64", dtype));
  const bool int64 = dtype == "int64";
  const auto file = dir / input["file"].get<std::string>();
  const lathe::OnnxValue x{
      int64 ? read_int64s(file, input["shape"]) : read_floats(file, input["shape"]),
      int64 ? lathe::OnnxType::Int64 : lathe::OnnxType::Float};
  const auto outputs = graph.run({{input["name"].get<std::string>(), x}});
  bool ok = true;
  for (std::size_t k = 0; k < reference["outputs"].size(); ++k) {
    const auto& spec = reference["outputs"][k];
    const std::string name = spec["name"];
    if (graph.outputs().at(k).name != name) {
      std::cerr << fmt::format("output {} is '{}', expected '{}'\n", k, graph.outputs()[k].name,
                               name);
      return 1;
    }
    const Tensor expected = read_floats(dir / spec["file"].get<std::string>(), spec["shape"]);
    const Tensor got = outputs[k].tensor;
    if (got.shape() != expected.shape()) {
      std::cerr << fmt::format("{}: shape {}, lathe gives {}\n", name,
                               lathe::shape_str(got.shape()), lathe::shape_str(expected.shape()));
      ok = false;
      continue;
    }
    const bool relative = spec.value("check", "absolute") == "relative";
    const std::int64_t columns = expected.shape().back();
    const float* e = expected.data<float>();
    const float* g = got.data<float>();
    double worst = 0, worst_abs = 0;
    for (std::int64_t row = 0; row < expected.numel() / columns; ++row) {
      double scale = 1;
      if (relative)
        for (std::int64_t c = 0; c < columns; ++c)
          scale = std::max(scale, 1 + std::abs(double(e[row * columns + c])));
      for (std::int64_t c = 0; c < columns; ++c) {
        const double abs = std::abs(double(g[row * columns + c]) - e[row * columns + c]);
        const double diff = abs / scale;
        if (!(diff <= tolerance)) ok = false;
        worst = std::max(worst, diff);
        worst_abs = std::max(worst_abs, abs);
      }
    }
    std::cout << fmt::format(
        "{}: largest {} difference {:.3g} (tolerance {:g}), max abs diff {:.3g}\n", name,
        relative ? "relative" : "absolute", worst, tolerance, worst_abs);
  }
  return ok ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::cerr << "usage: onnx_import_compare REFERENCE_DIR MODEL.onnx [TOLERANCE]\n";
    return 2;
  }
  try {
    return run(argv[1], argv[2], argc > 3 ? std::stod(argv[3]) : 1e-5);
  } catch (const std::exception& e) {
    std::cerr << "onnx_import_compare: " << e.what() << "\n";
    return 1;
  }
}
