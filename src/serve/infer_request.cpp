// parse_infer_request: the body read by read_request_json (src/serve/infer_request_json.h),
// then checked against the model: the input's name, datatype and shape, or a table's columns.
#include "src/serve/infer_request.h"

#include "src/serve/infer_request_json.h"
#include "src/serve/json_messages.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

namespace lathe::serve {

std::string column_list(const ModelSignature& signature) {
  std::vector<std::string> names;
  for (const ColumnInput& column : signature.columns) names.push_back(json_quoted(column.name));
  return fmt::format("{}", fmt::join(names, ", "));
}

namespace {

enum class Datatype { FP32, FP64, INT64, INT32, UINT8 };

std::optional<Datatype> datatype_from_name(const std::string& name) {
  if (name == "FP32") return Datatype::FP32;
  if (name == "FP64") return Datatype::FP64;
  if (name == "INT64") return Datatype::INT64;
  if (name == "INT32") return Datatype::INT32;
  if (name == "UINT8") return Datatype::UINT8;
  return std::nullopt;
}

std::string shape_text(const std::vector<std::int64_t>& shape) {
  return fmt::format("[{}]", fmt::join(shape, ","));
}

// The product of `shape`, or nullopt when it overflows int64 or exceeds `limit`.
std::optional<std::int64_t> element_count(const std::vector<std::int64_t>& shape,
                                          std::int64_t limit) {
  std::int64_t count = 1;
  for (const std::int64_t dim : shape)
    if (__builtin_mul_overflow(count, dim, &count)) return std::nullopt;
  if (count > limit) return std::nullopt;
  return count;
}

void check_values_fit(const InputTensor& input, Datatype type, const std::string& type_name,
                      const std::string& path = "inputs[0]") {
  if (type == Datatype::FP32 || type == Datatype::FP64) {
    if (input.saw_fp32_overflow)
      bad_request(
          fmt::format("{}.data holds a value beyond the float32 range (+-{:g}) the "
                      "model computes in",
                      path, FLT_MAX));
    return;
  }
  if (input.saw_fraction)
    bad_request(fmt::format("{}.data holds a number that is not an integer, for datatype {}", path,
                            type_name));
  std::int64_t low = 0, high = 255;
  if (type == Datatype::INT32) {
    low = std::numeric_limits<std::int32_t>::min();
    high = std::numeric_limits<std::int32_t>::max();
  } else if (type == Datatype::INT64) {
    low = std::numeric_limits<std::int64_t>::min();
    high = std::numeric_limits<std::int64_t>::max();
  }
  if (input.min_integer < low)
    bad_request(fmt::format("{}.data holds {}, below the {} range [{}, {}]", path,
                            input.min_integer, type_name, low, high));
  if (input.max_integer > static_cast<std::uint64_t>(high))
    bad_request(fmt::format("{}.data holds {}, above the {} range [{}, {}]", path,
                            input.max_integer, type_name, low, high));
  // Whole numbers written with a decimal point: compared as doubles (the bounds of INT64 round
  // to 2^63 there, which only matters for values float32 cannot tell apart anyway).
  if (input.min_whole_float < static_cast<double>(low))
    bad_request(fmt::format("{}.data holds {}, below the {} range [{}, {}]", path,
                            input.min_whole_float, type_name, low, high));
  if (input.max_whole_float > static_cast<double>(high))
    bad_request(fmt::format("{}.data holds {}, above the {} range [{}, {}]", path,
                            input.max_whole_float, type_name, low, high));
}

// The requested outputs, checked against the model's.
void add_requested_outputs(std::vector<std::string>& requested, const ModelSignature& signature,
                           InferRequest& request) {
  for (std::string& name : requested) {
    if (std::find(signature.output_names.begin(), signature.output_names.end(), name) ==
        signature.output_names.end()) {
      std::vector<std::string> names;
      for (const auto& known : signature.output_names) names.push_back(json_quoted(known));
      bad_request(fmt::format("requested output {} is not an output of this model; it has {}",
                              json_quoted(name), fmt::join(names, ", ")));
    }
    if (std::find(request.requested_outputs.begin(), request.requested_outputs.end(), name) ==
        request.requested_outputs.end())
      request.requested_outputs.push_back(std::move(name));
  }
}

// Rows of a model with columns: one input per column, or one [N, columns] input of numbers when
// every column is numeric.
RawTable read_table_inputs(std::vector<InputTensor>& inputs, const ModelSignature& signature,
                           std::int64_t& batch) {
  const auto& columns = signature.columns;
  const bool all_numeric =
      std::all_of(columns.begin(), columns.end(), [](const ColumnInput& c) { return c.numeric; });
  const std::string how =
      all_numeric
          ? fmt::format("one input per column ({}), or {} [N,{}] of numbers",
                        column_list(signature), json_quoted(signature.input_name), columns.size())
          : fmt::format("one input per column: {}", column_list(signature));
  RawTable table;
  table.source = "request";
  table.locate = [](std::int64_t row, std::size_t column) {
    return fmt::format("inputs[{}].data[{}]", column, row);
  };
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    InputTensor& input = inputs[i];
    const std::string path = fmt::format("inputs[{}]", i);
    if (!input.name) bad_request(fmt::format("{} has no \"name\"", path));
    const auto column = std::find_if(columns.begin(), columns.end(),
                                     [&](const ColumnInput& c) { return c.name == *input.name; });
    const bool single = all_numeric && inputs.size() == 1 && *input.name == signature.input_name;
    if (column == columns.end() && !single)
      bad_request(
          fmt::format("{}.name is {}; this model takes {}", path, json_quoted(*input.name), how));
    for (std::size_t k = 0; k < i; ++k)
      if (*inputs[k].name == *input.name)
        bad_request(
            fmt::format("{}: column {} is also inputs[{}]", path, json_quoted(*input.name), k));
    if (!input.datatype) bad_request(fmt::format("{} has no \"datatype\"", path));
    const bool bytes = *input.datatype == "BYTES";
    const std::optional<Datatype> type = datatype_from_name(*input.datatype);
    if (!type && !bytes)
      bad_request(
          fmt::format("{}.datatype {} is not supported; use BYTES (strings), FP32, FP64, "
                      "INT64, INT32 or UINT8",
                      path, json_quoted(*input.datatype)));
    const bool numeric_column = single || column->numeric;
    if (bytes && numeric_column)
      bad_request(
          fmt::format("{} ({}): datatype BYTES, but the column is numeric in this model; "
                      "send its values as numbers (FP32, FP64, INT64, INT32 or UINT8)",
                      path, json_quoted(*input.name)));
    if (!input.has_shape) bad_request(fmt::format("{} has no \"shape\"", path));
    if (!input.has_data) bad_request(fmt::format("{} has no \"data\"", path));
    const std::vector<std::int64_t>& shape = input.shape;
    const std::int64_t width = single ? static_cast<std::int64_t>(columns.size()) : 1;
    const bool fits = single ? shape.size() == 2 && shape[1] == width
                             : shape.size() == 1 || (shape.size() == 2 && shape[1] == 1);
    if (!fits)
      bad_request(fmt::format("{}.shape {} does not fit this model; expected {}", path,
                              shape_text(shape),
                              single ? fmt::format("[N,{}]", width) : std::string("[N] or [N,1]")));
    if (shape[0] < 1)
      bad_request(fmt::format("{}.shape {} has no examples (N = 0)", path, shape_text(shape)));
    if (i == 0) batch = shape[0];
    if (shape[0] != batch)
      bad_request(fmt::format("{}.shape {} has {} rows but inputs[0] has {}", path,
                              shape_text(shape), shape[0], batch));
    if (bytes && input.saw_number)
      bad_request(fmt::format("{}.data holds a number; datatype BYTES holds strings", path));
    if (!bytes && input.saw_string)
      bad_request(fmt::format("{}.data holds a string; datatype {} holds numbers (BYTES for text)",
                              path, *input.datatype));
    if (static_cast<std::int64_t>(input.nulls.size()) != shape[0] * width)
      bad_request(fmt::format("{}.data has {} values but shape {} needs {}", path,
                              input.nulls.size(), shape_text(shape), shape[0] * width));
    if (!bytes) check_values_fit(input, *type, *input.datatype, path);
    if (single) {
      for (std::int64_t c = 0; c < width; ++c) {
        RawColumn out{.name = columns[static_cast<std::size_t>(c)].name, .numeric = true};
        for (std::int64_t r = 0; r < batch; ++r)
          out.numbers.push_back(input.data[static_cast<std::size_t>(r * width + c)]);
        table.columns.push_back(std::move(out));
      }
      table.locate = [width](std::int64_t row, std::size_t column) {
        return fmt::format("inputs[0].data[{}]", row * width + static_cast<std::int64_t>(column));
      };
    } else if (bytes) {
      table.columns.push_back({.name = *input.name,
                               .numeric = false,
                               .text = std::move(input.strings),
                               .null = std::move(input.nulls)});
    } else {
      table.columns.push_back(
          {.name = *input.name, .numeric = true, .numbers = std::move(input.data)});
    }
  }
  if (table.columns.size() < columns.size())
    for (const ColumnInput& column : columns)
      if (!table.find(column.name))
        bad_request(fmt::format("the request has no input for column {}; this model takes {}",
                                json_quoted(column.name), how));
  table.rows = batch;
  return table;
}

}  // namespace

InferRequest parse_infer_request(std::string_view body, const ModelSignature& signature,
                                 const RequestLimits& limits) {
  RequestJson json = read_request_json(body, signature, limits);
  if (!json.saw_inputs_key) bad_request("the request has no \"inputs\"");
  if (json.inputs_seen == 0)
    bad_request(fmt::format("\"inputs\" is empty; this model takes {}",
                            signature.columns.empty()
                                ? "one input, " + json_quoted(signature.input_name)
                                : "one input per column: " + column_list(signature)));
  if (!signature.columns.empty()) {
    InferRequest request;
    request.table = read_table_inputs(json.inputs, signature, request.batch);
    request.id = std::move(json.id);
    add_requested_outputs(json.requested_outputs, signature, request);
    return request;
  }
  InputTensor& input = json.inputs.front();
  if (!input.name) bad_request("inputs[0] has no \"name\"");
  if (*input.name != signature.input_name)
    bad_request(fmt::format("inputs[0].name is {}; this model's input is {}",
                            json_quoted(*input.name), json_quoted(signature.input_name)));
  if (!input.datatype) bad_request("inputs[0] has no \"datatype\"");
  const std::optional<Datatype> type = datatype_from_name(*input.datatype);
  if (!type)
    bad_request(
        fmt::format("inputs[0].datatype {} is not supported; use FP32, FP64, INT64, "
                    "INT32 or UINT8",
                    json_quoted(*input.datatype)));
  if (!input.has_shape) bad_request("inputs[0] has no \"shape\"");
  if (!input.has_data) bad_request("inputs[0] has no \"data\"");

  // The shape: [N, input_shape...] or [N, features], N >= 1, within the element limit.
  const std::vector<std::int64_t>& shape = input.shape;
  const Shape& example = signature.input_shape;
  const std::int64_t features = shape_numel(example);
  const std::string expected_text =
      example.size() == 1 ? fmt::format("[N,{}]", features)
                          : fmt::format("[N,{}] or [N,{}]", fmt::join(example, ","), features);
  const std::optional<std::int64_t> count = element_count(shape, limits.max_elements);
  if (!count)
    bad_request(
        fmt::format("inputs[0].shape {} holds more than {} elements, the limit of this "
                    "server",
                    shape_text(shape), limits.max_elements));
  const bool full_shape = shape.size() == example.size() + 1 &&
                          std::equal(example.begin(), example.end(), shape.begin() + 1);
  const bool flat_shape = shape.size() == 2 && shape[1] == features;
  if (!full_shape && !flat_shape)
    bad_request(fmt::format("inputs[0].shape {} does not fit this model; expected {}",
                            shape_text(shape), expected_text));
  if (shape[0] < 1)
    bad_request(fmt::format("inputs[0].shape {} has no examples (N = 0)", shape_text(shape)));
  if (static_cast<std::int64_t>(input.data.size()) != *count)
    bad_request(fmt::format("inputs[0].data has {} values but shape {} needs {}", input.data.size(),
                            shape_text(shape), *count));
  check_values_fit(input, *type, *input.datatype);

  InferRequest request;
  request.id = std::move(json.id);
  request.batch = shape[0];
  request.data = std::move(input.data);
  add_requested_outputs(json.requested_outputs, signature, request);
  return request;
}

}  // namespace lathe::serve
