// libFuzzer target: the body of POST /v2/models/{name}/generate, as lathe serve parses it. Any
// answer other than a request within the limits or a RequestError with a 4xx status is a finding.
#include <cmath>

#include "fuzz/fuzz_support.h"
#include "src/serve/generate_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lathe::serve::GenerateLimits limits{.max_tokens = 4096, .max_prompt_bytes = 4096};
  try {
    const lathe::serve::GenerateRequest request =
        lathe::serve::parse_generate_request(lathe::fuzz::bytes_of(data, size), limits);
    lathe::fuzz::require(!request.prompt.empty(), "a parsed request has an empty prompt");
    lathe::fuzz::require(request.prompt.size() <= 4096, "the prompt is over the limit");
    lathe::fuzz::require(request.max_tokens >= 0 && request.max_tokens <= 4096,
                         "max_tokens is out of range");
    lathe::fuzz::require(request.temperature >= 0 && std::isfinite(request.temperature),
                         "temperature is negative or not finite");
    lathe::fuzz::require(request.top_k >= 0, "top_k is negative");
  } catch (const lathe::serve::RequestError& e) {
    lathe::fuzz::require(e.status() >= 400 && e.status() < 500, "a request error is not 4xx");
  }
  return 0;
}
