// libFuzzer target: the body of POST /v2/models/{name}/infer, as lathe serve parses it, against
// a model taking [N,28,28] (or [N,784]) inputs. Any answer other than a parsed request or a
// RequestError with a 4xx status is a finding.
#include "fuzz/fuzz_support.h"
#include "src/serve/infer_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lathe::serve::ModelSignature signature{
      "input", {28, 28}, {"probabilities", "class_index"}};
  static const lathe::serve::RequestLimits limits{.max_depth = 32, .max_elements = 1 << 16};
  try {
    const lathe::serve::InferRequest request =
        lathe::serve::parse_infer_request(lathe::fuzz::bytes_of(data, size), signature, limits);
    lathe::fuzz::require(request.batch >= 1, "a parsed request has no examples");
    lathe::fuzz::require(request.data.size() == static_cast<std::size_t>(request.batch) * 784,
                         "data length is not batch x features");
  } catch (const lathe::serve::RequestError& e) {
    lathe::fuzz::require(e.status() >= 400 && e.status() < 500, "a request error is not 4xx");
  }
  return 0;
}
