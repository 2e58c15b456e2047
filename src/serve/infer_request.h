#pragma once
// The body of POST /v2/models/{name}/infer (Open Inference Protocol v2, JSON form), parsed and
// checked against the model in one pass. A pure function of its inputs: no I/O, no globals, so a
// fuzz target can call it directly.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/error.h"
#include "lathe/table.h"
#include "lathe/tensor.h"

namespace lathe::serve {

// One column of a model trained on a table: an input of its own in a request.
struct ColumnInput {
  std::string name;
  bool numeric = true;  // numbers only; otherwise text (BYTES) or numbers (taken as their text)
};

// What a model accepts and returns.
struct ModelSignature {
  std::string input_name = "input";
  Shape input_shape;  // one example, e.g. {28, 28}
  std::vector<std::string> output_names;
  // A model trained on a table: one input per column, shape [N] or [N,1] (the KServe/Triton
  // convention for tabular models). When every column is numeric, a single input `input_name`
  // [N, columns] of numbers is accepted too. Empty for other models.
  std::vector<ColumnInput> columns;
};

struct RequestLimits {
  std::size_t max_depth = 32;           // nesting of arrays and objects
  std::int64_t max_elements = 1 << 24;  // tensor elements (shape product and data values)
};

struct InferRequest {
  std::optional<std::string> id;
  std::int64_t batch = 0;                      // N, the first dimension of the input's shape
  std::vector<float> data;                     // N * features values, row-major (not tables)
  std::vector<std::string> requested_outputs;  // empty: all outputs
  // A model with columns: the rows as sent, one column per input (in the request's order; a
  // single [N, columns] input becomes one numeric column each). Cells are located as
  // "inputs[i].data[r]". null in "data" is a missing value.
  std::optional<RawTable> table;
};

// A request that cannot be served as sent, with the HTTP status to answer: 400 for everything
// wrong with the request itself.
class RequestError : public Error {
 public:
  RequestError(int status, const std::string& message) : Error(message), status_(status) {}
  int status() const { return status_; }

 private:
  int status_;
};

[[noreturn]] inline void bad_request(const std::string& message) {
  throw RequestError(400, message);
}

// A model's columns as JSON strings, in order: "island", "bill".
std::string column_list(const ModelSignature& signature);

// Datatypes accepted for the input (all converted to float32): FP32, FP64, INT64, INT32, UINT8.
// `data` may be flat or nested; its values, flattened in order, must number exactly the product
// of `shape`, which is [N, input_shape...] or [N, features] with N >= 1. A model with columns
// takes one input per column as described there, BYTES (strings) for its text columns, and gives
// `table`. Throws RequestError.
InferRequest parse_infer_request(std::string_view body, const ModelSignature& signature,
                                 const RequestLimits& limits);

}  // namespace lathe::serve
