#pragma once
// The JSON of an infer request, read: every field the protocol defines, checked for its type,
// its place and the server's limits, but not yet against the model's inputs (parse_infer_request
// does that with what this returns). Internal to src/serve.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "lathe/table.h"
#include "src/serve/infer_request.h"

namespace lathe::serve {

// One input tensor of a request, as read.
struct InputTensor {
  std::optional<std::string> name, datatype;
  bool has_shape = false, has_data = false;
  std::vector<std::int64_t> shape;
  std::vector<float> data;
  // What the values of "data" were, for the datatype checks made once the datatype is known.
  bool saw_fraction = false;       // a value with a fractional part
  bool saw_fp32_overflow = false;  // magnitude beyond float32
  std::int64_t min_integer = 0;    // the most negative integer written as one (0 when none)
  std::uint64_t max_integer = 0;   // the largest non-negative integer written as one
  double min_whole_float = 0;      // the same for whole numbers written as 3.0 or 1e3
  double max_whole_float = 0;
  // Models with columns: strings (BYTES) and nulls (missing values). A null is a NaN in `data`
  // and an empty string flagged in `nulls`, whichever the datatype turns out to be.
  TextCells strings;
  std::vector<std::uint8_t> nulls;  // one per string, 1 for a null
  bool saw_string = false, saw_number = false;
};

struct RequestJson {
  // One per input read; one empty one when none was.
  std::vector<InputTensor> inputs = std::vector<InputTensor>(1);
  int inputs_seen = 0;
  bool saw_inputs_key = false;
  std::optional<std::string> id;
  std::vector<std::string> requested_outputs;  // as listed, repeats included
};

// Throws RequestError (400) for malformed JSON, a value of the wrong type or in the wrong place,
// nesting deeper than limits.max_depth or more values than limits.max_elements.
RequestJson read_request_json(std::string_view body, const ModelSignature& signature,
                              const RequestLimits& limits);

}  // namespace lathe::serve
