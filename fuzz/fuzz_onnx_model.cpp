// libFuzzer target: lathe's ONNX reader (OnnxGraph::parse) on any bytes and, for a model that
// loads, one run on zero inputs of its declared shapes (symbolic dimensions 1), under a 1 MiB
// tensor limit: whatever the model asks for, the reader and the kernels must answer with
// lathe::Error, never a crash, an out-of-bounds access or an allocation past the limit.
#include <cctype>
#include <map>
#include <string>

#include "fuzz/fuzz_support.h"
#include "lathe/onnx_import.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  lathe::OnnxLimits limits;
  limits.max_model_bytes = 1 << 20;
  limits.max_tensor_bytes = 1 << 20;
  try {
    const lathe::OnnxGraph graph =
        lathe::OnnxGraph::parse(std::string(lathe::fuzz::bytes_of(data, size)), {}, limits);
    std::map<std::string, lathe::OnnxValue> inputs;
    for (const auto& io : graph.inputs()) {
      lathe::Shape shape;
      std::int64_t elements = 1;
      for (const std::string& dim : io.dims) {
        std::int64_t d = 1;
        if (!dim.empty() && dim.size() < 6 && std::isdigit(static_cast<unsigned char>(dim[0])))
          d = std::stoll(dim);
        elements *= std::max<std::int64_t>(d, 1);
        if (elements > 4096) return 0;  // the run is about the kernels, not big inputs
        shape.push_back(d);
      }
      inputs[io.name] = {lathe::Tensor::zeros(shape, lathe::onnx_storage_dtype(io.type)), io.type};
    }
    graph.run(inputs);
  } catch (const lathe::Error&) {
  }
  return 0;
}
