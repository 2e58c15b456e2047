// libFuzzer target: the TOML run configuration, --set overrides, and the model it describes.
// Lines "#set key=value" (TOML comments, so the document stays valid) are also passed as --set
// overrides. A config that parses is built with make_sequential and run forward on a [2, in]
// input, but only when its layers are tiny: a valid config may describe a model of any size, and
// building a 10^5 x 10^5 linear layer is what the user asked for, not a bug. That cap is this
// harness's rule, not the library's.
#include <string>
#include <vector>

#include "fuzz/fuzz_support.h"
#include "lathe/config.h"
#include "lathe/error.h"
#include "lathe/nn.h"

namespace {

constexpr std::int64_t kMaxFeatures = 256;
constexpr std::int64_t kMaxParameters = 1 << 16;

std::vector<std::string> overrides_in(std::string_view text) {
  std::vector<std::string> overrides;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(start, end - start);
    if (line.starts_with("#set ")) overrides.emplace_back(line.substr(5));
    start = end + 1;
  }
  return overrides;
}

// Whether every layer is small enough to build; also the first layer's input width.
bool tiny(const nlohmann::json& layers, std::int64_t& width) {
  std::int64_t parameters = 0;
  width = 0;
  for (const nlohmann::json& layer : layers) {
    if (!layer.contains("in")) continue;
    const std::int64_t in = layer["in"].get<std::int64_t>(), out = layer["out"].get<std::int64_t>();
    if (in < 1 || out < 1) continue;  // Linear rejects these itself
    if (in > kMaxFeatures || out > kMaxFeatures) return false;
    parameters += (in + 1) * out;
    if (width == 0) width = in;
  }
  if (width <= 0) width = 4;
  return parameters <= kMaxParameters;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = lathe::fuzz::bytes_of(data, size);
  lathe::RunConfig config;
  try {
    config = lathe::parse_run_config(text, "fuzz.toml", "/fuzz", overrides_in(text));
    config.to_json().dump();  // the resolved config written to the run directory
  } catch (const lathe::Error&) {
    return 0;
  }
  // A registered model type (the GPT) needs the data's arguments; layer lists are built.
  if (config.model["type"] != "sequential") return 0;
  const nlohmann::json& layers = config.model["layers"];
  std::int64_t width = 0;
  if (!tiny(layers, width)) return 0;
  try {
    lathe::Generator generator(0);
    auto model = lathe::make_sequential(layers, generator);
    model->eval();
    model->forward(lathe::Tensor::zeros({2, width}));
  } catch (const lathe::Error&) {
  }
  return 0;
}
