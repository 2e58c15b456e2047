// libFuzzer target: parse_safetensors on any bytes and, for what parses, the bundle loader
// (architecture against tensors, model construction) and one forward pass on a tiny input; for
// a language model, its tokenizer and a few generated tokens.
#include <cmath>
#include <string>

#include "fuzz/fuzz_support.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/ops.h"

namespace {

constexpr const char* kWhere = "fuzz.safetensors";

// The input width of the first linear layer (depth first), or 0 if there is none.
std::int64_t input_width(const nlohmann::json& spec) {
  if (!spec.is_object()) return 0;
  if (spec.contains("layers") && spec["layers"].is_array()) {
    for (const nlohmann::json& layer : spec["layers"])
      if (const std::int64_t width = input_width(layer)) return width;
    return 0;
  }
  if (spec.contains("in") && spec["in"].is_number_unsigned())
    return static_cast<std::int64_t>(spec["in"].get<std::uint64_t>());
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using lathe::fuzz::require;
  const std::string_view bytes = lathe::fuzz::bytes_of(data, size);
  try {
    const lathe::SafetensorsContents contents = lathe::parse_safetensors(bytes, kWhere);
    // The reader allocates at most 8 bytes of tensor per byte of the file (U8 widened to I64).
    std::uint64_t allocated = 0;
    for (const auto& [name, tensor] : contents.tensors)
      allocated += static_cast<std::uint64_t>(tensor.numel()) * lathe::dtype_size(tensor.dtype());
    require(allocated <= 8 * size, "tensors larger than 8x the file");
  } catch (const lathe::Error&) {
    return 0;
  }
  try {
    const lathe::LoadedBundle bundle = lathe::parse_bundle(bytes, kWhere);
    if (lathe::is_language_model(bundle.info)) {
      const lathe::LanguageModel lm = lathe::as_language_model(bundle, kWhere);
      const auto tokens = lathe::generate(*lm.model, {0}, 3, {1.0, 2, 7});
      require(tokens.size() == 3, "generate returned the wrong number of tokens");
      for (std::int64_t t : tokens)
        require(t >= 0 && t < lm.model->vocab_size(), "a token outside the vocabulary");
      lm.tokenizer->decode(tokens);
      return 0;
    }
    std::int64_t width = input_width(bundle.info.architecture);
    require(width >= 0 && width <= static_cast<std::int64_t>(size), "a layer wider than the file");
    if (width == 0) width = 4;
    const lathe::Tensor out = bundle.model->forward(lathe::Tensor::zeros({2, width}));
    require(out.dim() >= 1 && out.shape()[0] == 2, "forward lost the batch axis");
  } catch (const lathe::Error&) {
  }
  return 0;
}
