// parse_infer_request: one SAX pass over the body with nlohmann's iterative parser, so that no
// document tree is built, deep nesting is refused at the first bracket past the limit (nothing
// recurses), and the numbers of "data" go straight into the float buffer.
#include "src/serve/infer_request.h"

#include "src/serve/json_messages.h"

#include <fmt/format.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace lathe::serve {
namespace {

using json = nlohmann::json;

constexpr std::size_t kMaxRank = 32;
constexpr std::size_t kMaxOutputs = 64;

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

// The one input tensor of a request, as read.
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

// The SAX handler: a stack of contexts, one per open array or object, that says what the next
// value is. Any problem stores a RequestError and returns false, which stops the parser.
class InferRequestSax {
 public:
  InferRequestSax(const ModelSignature& signature, const RequestLimits& limits)
      : signature_(signature), limits_(limits), tabular_(!signature.columns.empty()) {
    inputs_.emplace_back();
  }

  // ---- nlohmann::json SAX interface ----
  bool null() {
    if (tabular_ && top() == Context::Data) {
      if (!count_element()) return false;
      current().data.push_back(std::numeric_limits<float>::quiet_NaN());
      current().strings.push_back("");
      current().nulls.push_back(1);
      return true;
    }
    return scalar("null");
  }
  bool boolean(bool) { return scalar("a boolean"); }
  bool number_integer(json::number_integer_t value) {
    // nlohmann reports non-negative integers through number_unsigned, so this one is negative.
    switch (top()) {
      case Context::Data:
        current().min_integer = std::min<std::int64_t>(current().min_integer, value);
        return data_value(static_cast<double>(value));
      case Context::Shape:
        return fail(fmt::format("{}.shape[{}] is {}; dimensions are non-negative integers",
                                input_path(), current().shape.size(), value));
      default:
        return scalar("a number");
    }
  }
  bool number_unsigned(json::number_unsigned_t value) {
    switch (top()) {
      case Context::Data:
        current().max_integer = std::max<std::uint64_t>(current().max_integer, value);
        return data_value(static_cast<double>(value));
      case Context::Shape:
        if (current().shape.size() >= kMaxRank)
          return fail(fmt::format("{}.shape has more than {} dimensions", input_path(), kMaxRank));
        if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          return fail(fmt::format("{}.shape[{}] is {}, beyond any tensor size", input_path(),
                                  current().shape.size(), value));
        current().shape.push_back(static_cast<std::int64_t>(value));
        return true;
      default:
        return scalar("a number");
    }
  }
  bool number_float(json::number_float_t value, const std::string& text) {
    switch (top()) {
      case Context::Data:
        // 3.0 is an integer, as JSON writers print whole doubles; 3.5 is not.
        if (std::trunc(value) != value) {
          current().saw_fraction = true;
        } else {
          current().min_whole_float = std::min(current().min_whole_float, value);
          current().max_whole_float = std::max(current().max_whole_float, value);
        }
        return data_value(value);
      case Context::Shape:
        return fail(fmt::format("{}.shape[{}] is {}; dimensions are non-negative integers",
                                input_path(), current().shape.size(),
                                text.substr(0, kMaxErrorTokenChars)));
      default:
        return scalar("a number");
    }
  }
  bool string(std::string& value) {
    switch (top()) {
      case Context::Data:
        if (!tabular_) return scalar("a string");
        if (!count_element()) return false;
        current().saw_string = true;
        current().strings.push_back(value);
        current().nulls.push_back(0);
        return true;
      case Context::Root:
        if (key_ == "id") {
          id_ = std::move(value);
          return true;
        }
        return scalar("a string");
      case Context::Input:
        if (key_ == "name") {
          current().name = std::move(value);
          return true;
        }
        if (key_ == "datatype") {
          current().datatype = std::move(value);
          return true;
        }
        return scalar("a string");
      case Context::Output:
        if (key_ == "name") {
          output_name_ = std::move(value);
          return true;
        }
        return scalar("a string");
      default:
        return scalar("a string");
    }
  }
  bool binary(json::binary_t&) { return fail("the body holds binary data; send JSON text"); }

  bool start_object(std::size_t) {
    if (!room_for_one_more_level()) return false;
    switch (top()) {
      case Context::None:
        return push(Context::Root);
      case Context::Inputs:
        ++input_elements_;
        if (inputs_seen_ >= 1 && !tabular_)
          return fail(fmt::format("the request has more than one input; this model takes one, {}",
                                  json_quoted(signature_.input_name)));
        if (inputs_seen_ >= static_cast<int>(signature_.columns.size()) && tabular_)
          return fail(
              fmt::format("the request has more than {} inputs; this model takes one per "
                          "column",
                          signature_.columns.size()));
        if (inputs_seen_ >= 1) {
          inputs_.emplace_back();
          input_keys_ = 0;
        }
        ++inputs_seen_;
        return push(Context::Input);
      case Context::Outputs:
        if (requested_.size() >= kMaxOutputs)
          return fail(fmt::format("\"outputs\" lists more than {} outputs", kMaxOutputs));
        output_name_.reset();
        output_keys_ = 0;
        return push(Context::Output);
      case Context::Root:
        if (key_ == "parameters") return push(Context::Skip);
        return container_for_key("an object");
      case Context::Input:
        if (key_ == "parameters") return push(Context::Skip);
        return container_for_key("an object");
      case Context::Output:
        if (key_ == "parameters") return push(Context::Skip);
        return container_for_key("an object");
      case Context::Skip:
        return push(Context::Skip);
      case Context::Shape:
        return fail(
            fmt::format("{}.shape[{}] is an object; dimensions are non-negative "
                        "integers",
                        input_path(), current().shape.size()));
      case Context::Data:
        return fail(fmt::format("{}.data holds an object; it holds {}, flat or in nested arrays",
                                input_path(), data_words()));
    }
    return false;
  }

  bool start_array(std::size_t) {
    if (!room_for_one_more_level()) return false;
    switch (top()) {
      case Context::None:
        return fail("the body is a JSON array; an inference request is a JSON object");
      case Context::Root:
        if (key_ == "inputs") return push(Context::Inputs);
        if (key_ == "outputs") return push(Context::Outputs);
        return container_for_key("an array");
      case Context::Input:
        if (key_ == "shape") return push(Context::Shape);
        if (key_ == "data") {
          if (current().data.empty()) reserve_data();
          return push(Context::Data);
        }
        return container_for_key("an array");
      case Context::Data:
        return push(Context::Data);  // nested data
      case Context::Output:
        return container_for_key("an array");
      case Context::Skip:
        return push(Context::Skip);
      case Context::Inputs:
        return fail(
            fmt::format("inputs[{}] is an array; each input is an object", input_elements_++));
      case Context::Outputs:
        return fail(
            fmt::format("outputs[{}] is an array; each output is an object", requested_.size()));
      case Context::Shape:
        return fail(fmt::format("{}.shape[{}] is an array; a shape is a flat list of integers",
                                input_path(), current().shape.size()));
    }
    return false;
  }

  bool key(std::string& name) {
    key_ = std::move(name);
    switch (top()) {
      case Context::Root:
        return first_time(root_keys_, {"id", "inputs", "outputs", "parameters"}, "");
      case Context::Input:
        return first_time(input_keys_, {"name", "shape", "datatype", "data", "parameters"},
                          input_path() + ".");
      case Context::Output:
        return first_time(output_keys_, {"name", "parameters"},
                          fmt::format("outputs[{}].", requested_.size()));
      default:
        return true;
    }
  }

  bool end_object() {
    const Context closed = pop();
    if (closed == Context::Output) {
      if (!output_name_) return fail(fmt::format("outputs[{}] has no \"name\"", requested_.size()));
      requested_.push_back(std::move(*output_name_));
    }
    return true;
  }
  bool end_array() {
    pop();
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const json::exception& e) {
    if (error_) return false;  // a handler stopped the parse; keep its message
    return fail(malformed_json_message(position, e));
  }

  // ---- results ----
  const std::optional<RequestError>& error() const { return error_; }
  bool saw_root() const { return saw_root_; }
  bool saw_inputs_key() const { return (root_keys_ & 2u) != 0; }
  int inputs_seen() const { return inputs_seen_; }
  InputTensor& input() { return inputs_.front(); }
  std::vector<InputTensor>& inputs() { return inputs_; }
  std::optional<std::string>& id() { return id_; }
  std::vector<std::string>& requested() { return requested_; }

 private:
  enum class Context { None, Root, Inputs, Input, Shape, Data, Outputs, Output, Skip };

  Context top() const { return stack_.empty() ? Context::None : stack_.back(); }
  bool push(Context context) {
    if (context == Context::Root) saw_root_ = true;
    if (context == Context::Shape) current().has_shape = true;
    if (context == Context::Data) current().has_data = true;
    stack_.push_back(context);
    return true;
  }
  Context pop() {
    const Context closed = top();
    if (!stack_.empty()) stack_.pop_back();
    return closed;
  }

  bool fail(std::string message) {
    if (!error_) error_.emplace(400, std::move(message));
    return false;
  }

  bool room_for_one_more_level() {
    if (stack_.size() < limits_.max_depth) return true;
    return fail(
        fmt::format("the JSON nests arrays and objects deeper than {} levels", limits_.max_depth));
  }

  // A key seen twice in one object is an error: which value counts would be a guess.
  bool first_time(std::uint32_t& seen, std::initializer_list<const char*> known,
                  const std::string& where) {
    std::uint32_t bit = 1;
    for (const char* name : known) {
      if (key_ == name) {
        if (seen & bit) return fail(fmt::format("{}\"{}\" appears twice", where, key_));
        seen |= bit;
        return true;
      }
      bit <<= 1;
    }
    return true;  // other keys are extensions this server ignores
  }

  // The expected type of each known key, for messages.
  static const char* expected_type(Context context, const std::string& key) {
    if (context == Context::Root) {
      if (key == "id") return "a string";
      if (key == "inputs" || key == "outputs") return "an array of objects";
      if (key == "parameters") return "an object";
    } else if (context == Context::Input) {
      if (key == "name" || key == "datatype") return "a string";
      if (key == "shape") return "an array of integers";
      if (key == "data") return "an array of numbers";
      if (key == "parameters") return "an object";
    } else if (context == Context::Output) {
      if (key == "name") return "a string";
      if (key == "parameters") return "an object";
    }
    return nullptr;
  }

  std::string field_path() const {
    switch (top()) {
      case Context::Input:
        return input_path() + "." + key_;
      case Context::Output:
        return fmt::format("outputs[{}].{}", requested_.size(), key_);
      default:
        return key_;
    }
  }

  // An array or object where the key names something else: an error for known keys, skipped for
  // unknown ones.
  bool container_for_key(const char* what) {
    if (const char* expected = expected_type(top(), key_))
      return fail(fmt::format("\"{}\" is {}; expected {}", field_path(), what, expected));
    return push(Context::Skip);
  }

  // A scalar that no case above consumed.
  bool scalar(const char* what) {
    switch (top()) {
      case Context::None:
        return fail(fmt::format("the body is {}; an inference request is a JSON object", what));
      case Context::Root:
      case Context::Input:
      case Context::Output:
        if (const char* expected = expected_type(top(), key_))
          return fail(fmt::format("\"{}\" is {}; expected {}", field_path(), what, expected));
        return true;  // the value of an unknown key
      case Context::Inputs:
        return fail(
            fmt::format("inputs[{}] is {}; each input is an object", input_elements_++, what));
      case Context::Outputs:
        return fail(
            fmt::format("outputs[{}] is {}; each output is an object", requested_.size(), what));
      case Context::Shape:
        return fail(fmt::format("{}.shape[{}] is {}; dimensions are non-negative integers",
                                input_path(), current().shape.size(), what));
      case Context::Data:
        return fail(fmt::format("{}.data holds {}; it holds {}, flat or in nested arrays",
                                input_path(), what, data_words()));
      case Context::Skip:
        return true;
    }
    return false;
  }

  InputTensor& current() { return inputs_.back(); }
  const InputTensor& current() const { return inputs_.back(); }

  // The path of the input being read: "inputs[i]".
  std::string input_path() const { return fmt::format("inputs[{}]", inputs_.size() - 1); }
  const char* data_words() const { return tabular_ ? "numbers, strings or nulls" : "numbers"; }

  // Every value of every input counts against the element limit.
  bool count_element() {
    if (elements_ >= limits_.max_elements)
      return fail(fmt::format("{}.data holds more than {} values, the limit of this server",
                              input_path(), limits_.max_elements));
    ++elements_;
    return true;
  }

  bool data_value(double value) {
    if (tabular_) {
      if (!count_element()) return false;
      current().saw_number = true;
      current().nulls.push_back(0);
    } else if (static_cast<std::int64_t>(current().data.size()) >= limits_.max_elements) {
      return fail(fmt::format("inputs[0].data holds more than {} values, the limit of this server",
                              limits_.max_elements));
    }
    if (!(std::fabs(value) <= static_cast<double>(FLT_MAX))) {
      current().saw_fp32_overflow = true;
      value = 0;
    }
    current().data.push_back(static_cast<float>(value));
    return true;
  }

  // When the shape came first and is plausible, allocate the data buffer once.
  void reserve_data() {
    std::int64_t count = 1;
    for (const std::int64_t dim : current().shape) {
      if (dim != 0 && count > limits_.max_elements / dim) return;
      count *= dim;
    }
    if (count > 0 && count <= limits_.max_elements) current().data.reserve(count);
  }

  const ModelSignature& signature_;
  const RequestLimits& limits_;
  const bool tabular_;
  std::int64_t elements_ = 0;  // values of all inputs
  std::vector<Context> stack_;
  std::string key_;
  bool saw_root_ = false;
  std::uint32_t root_keys_ = 0, input_keys_ = 0, output_keys_ = 0;
  int inputs_seen_ = 0;
  int input_elements_ = 0;           // values seen in "inputs", for messages
  std::vector<InputTensor> inputs_;  // one per input seen (one before any)
  std::optional<std::string> id_;
  std::optional<std::string> output_name_;
  std::vector<std::string> requested_;
  std::optional<RequestError> error_;
};

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

std::string column_list(const ModelSignature& signature) {
  std::vector<std::string> names;
  for (const ColumnInput& column : signature.columns) names.push_back(json_quoted(column.name));
  return fmt::format("{}", fmt::join(names, ", "));
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
  InferRequestSax sax(signature, limits);
  const bool parsed =
      json::sax_parse(body.data(), body.data() + body.size(), &sax, json::input_format_t::json);
  if (sax.error()) throw *sax.error();
  if (!parsed || !sax.saw_root()) bad_request("malformed JSON");

  if (!sax.saw_inputs_key()) bad_request("the request has no \"inputs\"");
  if (sax.inputs_seen() == 0)
    bad_request(fmt::format("\"inputs\" is empty; this model takes {}",
                            signature.columns.empty()
                                ? "one input, " + json_quoted(signature.input_name)
                                : "one input per column: " + column_list(signature)));
  if (!signature.columns.empty()) {
    InferRequest request;
    request.table = read_table_inputs(sax.inputs(), signature, request.batch);
    request.id = std::move(sax.id());
    add_requested_outputs(sax.requested(), signature, request);
    return request;
  }
  InputTensor& input = sax.input();
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
  request.id = std::move(sax.id());
  request.batch = shape[0];
  request.data = std::move(input.data);
  add_requested_outputs(sax.requested(), signature, request);
  return request;
}

}  // namespace lathe::serve
