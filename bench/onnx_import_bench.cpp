// The target of issue 26: a bundle exported to ONNX and imported back (lathe export, lathe
// import) predicts at least as fast as the native bundle. Both Predictors run in alternating
// rounds on the same Fashion-MNIST test images (bench_util.h), at batch 1 and batch 1000, and the
// medians are printed with their ratio.
//
//   build/release/bench/onnx_import_bench BUNDLE [IMAGES.idx.gz] [--rounds N] [--json]
//
// --json prints one JSON line per batch size instead of the table (bench/ort_compare.sh reads
// the native Predictor's figures from it).
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <filesystem>

#include "bench/bench_util.h"
#include "lathe/lathe.h"
#include "lathe/onnx.h"
#include "lathe/onnx_import.h"

int main(int argc, char** argv) {
  CLI::App app{"ONNX-imported bundle against the native one, Predictor::predict"};
  std::string bundle, images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
  int rounds = 7;
  app.add_option("bundle", bundle, "a classifier bundle (e.g. the main job's)")->required();
  app.add_option("images", images, "IDX images to predict on");
  app.add_option("--rounds", rounds, "alternating rounds; medians are reported");
  bool json = false;
  app.add_flag("--json", json, "one JSON line per batch size instead of the table");
  CLI11_PARSE(app, argc, argv);
  try {
    using namespace lathe;
    const Predictor native = Predictor::load(bundle);
    const auto onnx_path = std::filesystem::temp_directory_path() / "lathe_onnx_import_bench.onnx";
    export_onnx(native, onnx_path);
    const Predictor imported(import_onnx(onnx_path));
    std::filesystem::remove(onnx_path);
    const Tensor all = read_idx(images).to(DType::Float32);
    if (!json)
      fmt::print("{:<12} {:>14} {:>14} {:>8}  target: imported at least as fast\n", "batch",
                 "native s/call", "imported", "ratio");
    for (const std::int64_t batch : {std::int64_t{1}, std::int64_t{1000}}) {
      const Tensor x = slice(all, 0, 0, batch);
      const auto r = bench::compare([&] { Tensor y = imported.predict(x); },
                                    [&] { Tensor y = native.predict(x); }, rounds, 0.2);
      const double ratio = r.reference_seconds / r.candidate_seconds;
      if (json) {
        fmt::print(R"({{"side": "lathe", "batch": {}, "seconds": {}, "imported_seconds": {}}})"
                   "\n",
                   batch, r.reference_seconds, r.candidate_seconds);
        continue;
      }
      fmt::print("{:<12} {:>14.3e} {:>14.3e} {:>7.2f}x  {}\n", batch, r.reference_seconds,
                 r.candidate_seconds, ratio, ratio >= 1.0 ? "met" : "not met");
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "onnx_import_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
