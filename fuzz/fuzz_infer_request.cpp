// libFuzzer target: the body of POST /v2/models/{name}/infer, as lathe serve parses it, against
// a model taking [N,28,28] (or [N,784]) inputs, and against a model trained on a table (a text
// column and a numeric one, each its own input). Any answer other than a parsed request or a
// RequestError with a 4xx status is a finding, and so is a verdict nlohmann's parser
// contradicts: a body accepted that it rejects, or one it accepts called malformed (the server
// reads bodies with simdjson, whose On Demand parser validates only what it is asked to read).
#include <nlohmann/json.hpp>

#include "fuzz/fuzz_support.h"
#include "src/serve/infer_request.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const lathe::serve::ModelSignature signature{
      "input", {28, 28}, {"probabilities", "class_index"}, {}};
  static const lathe::serve::ModelSignature table_signature{
      "input", {4}, {"probabilities", "class_index"}, {{"island", false}, {"bill", true}}};
  static const lathe::serve::RequestLimits limits{.max_depth = 32, .max_elements = 1 << 16};
  const std::string_view body = lathe::fuzz::bytes_of(data, size);
  // nlohmann stops at a NUL byte as at the end of the text, so "{}\0x" passes its check; no JSON
  // text holds a raw NUL, and the server refuses one.
  const bool valid_json =
      body.find('\0') == std::string_view::npos && nlohmann::json::accept(body.begin(), body.end());
  try {
    const lathe::serve::InferRequest request =
        lathe::serve::parse_infer_request(body, signature, limits);
    lathe::fuzz::require(valid_json, "a body nlohmann rejects was accepted");
    lathe::fuzz::require(request.batch >= 1, "a parsed request has no examples");
    lathe::fuzz::require(request.data.size() == static_cast<std::size_t>(request.batch) * 784,
                         "data length is not batch x features");
  } catch (const lathe::serve::RequestError& e) {
    lathe::fuzz::require(e.status() >= 400 && e.status() < 500, "a request error is not 4xx");
    lathe::fuzz::require(!valid_json || std::string_view(e.what()).rfind("malformed JSON", 0) != 0,
                         "a body nlohmann accepts was called malformed");
  }
  try {
    const lathe::serve::InferRequest request =
        lathe::serve::parse_infer_request(body, table_signature, limits);
    lathe::fuzz::require(request.batch >= 1 && request.table, "a parsed request has no rows");
    lathe::fuzz::require(request.table->rows == request.batch && request.table->columns.size() == 2,
                         "the table is not batch rows of the model's columns");
    for (const lathe::RawColumn& column : request.table->columns)
      lathe::fuzz::require((column.numeric ? column.numbers.size() : column.text.size()) ==
                               static_cast<std::size_t>(request.batch),
                           "a column's value count is not the batch");
  } catch (const lathe::serve::RequestError& e) {
    lathe::fuzz::require(e.status() >= 400 && e.status() < 500, "a request error is not 4xx");
  }
  return 0;
}
