// read_request_json: one pass of simdjson's On Demand parser (Debian's libsimdjson-dev) over the
// body. It reads the 784 numbers of a Fashion-MNIST request in a third of the time nlohmann's SAX
// parser took (10 us against 31 us), which was a quarter of the server's CPU per request
// (docs/deploy/serve.md, the load test).
//
// On Demand validates only what it is asked to read, so every value is read, those of unknown
// keys and "parameters" too: no body nlohmann rejects is accepted, and none it accepts is called
// malformed (a differential test checks both, and the numbers read). The walk recurses once per
// level of nesting and refuses the first bracket past limits.max_depth, before reading what it
// holds. Where simdjson finds the JSON malformed, nlohmann reads the body again to say where and
// what, in the words this server has always used.
#include "src/serve/infer_request_json.h"

#include <fmt/format.h>
#include <simdjson.h>

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "src/io/untrusted_json.h"
#include "src/serve/json_messages.h"

namespace lathe::serve {
namespace {

namespace od = simdjson::ondemand;
using simdjson::simdjson_error;

constexpr std::size_t kMaxRank = 32;
constexpr std::size_t kMaxOutputs = 64;
// A thread keeps its parser for bodies up to this size, and with it an index of up to 1 MB (4
// bytes per byte of body); a larger body gets a parser of its own, freed after it. Every HTTP
// connection has a thread.
constexpr std::size_t kKeptParserBytes = std::size_t{256} << 10;

template <class T>
T take(simdjson::simdjson_result<T>&& result) {
  T value;
  if (const simdjson::error_code error = std::move(result).get(value)) throw simdjson_error(error);
  return value;
}

// A JSON type in a message: "a string", "an array".
const char* type_words(od::json_type type) {
  switch (type) {
    case od::json_type::array:
      return "an array";
    case od::json_type::object:
      return "an object";
    case od::json_type::number:
      return "a number";
    case od::json_type::string:
      return "a string";
    case od::json_type::boolean:
      return "a boolean";
    case od::json_type::null:
      return "null";
  }
  return "a value";
}

// What a value is, for a message. A scalar is read whole, so that a malformed one ("tru") is
// reported as malformed JSON, not by its first character.
const char* kind_of(od::value& value) {
  const od::json_type type = take(value.type());
  switch (type) {
    case od::json_type::number:
      take(value.get_double());
      break;
    case od::json_type::string:
      take(value.get_string());
      break;
    case od::json_type::boolean:
      take(value.get_bool());
      break;
    case od::json_type::null:
      if (!take(value.is_null())) throw simdjson_error(simdjson::N_ATOM_ERROR);
      break;
    default:
      break;
  }
  return type_words(type);
}

// A JSON number as nlohmann reads it: an integer when written as one and within 64 bits, else
// a double.
struct Number {
  enum class Kind { Negative, NonNegative, Float } kind;
  std::int64_t negative = 0;
  std::uint64_t non_negative = 0;
  double value = 0;  // of every kind
};

[[gnu::always_inline]] inline Number read_number(od::value& value) {
  od::number number;
  // An integer beyond 64 bits is read as a double; a malformed number throws there.
  if (value.get_number().get(number) != simdjson::SUCCESS)
    return {Number::Kind::Float, 0, 0, take(value.get_double())};
  if (number.is_int64()) {
    const std::int64_t v = number.get_int64();
    if (v < 0) return {Number::Kind::Negative, v, 0, static_cast<double>(v)};
    return {Number::Kind::NonNegative, 0, static_cast<std::uint64_t>(v), static_cast<double>(v)};
  }
  if (number.is_uint64())
    return {Number::Kind::NonNegative, 0, number.get_uint64(),
            static_cast<double>(number.get_uint64())};
  return {Number::Kind::Float, 0, 0, number.get_double()};
}

// The text of a number, for a message; before it is read.
std::string number_text(od::value& value) {
  std::string_view text = value.raw_json_token();
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  return std::string(text.substr(0, kMaxErrorTokenChars));
}

std::string too_deep_message(std::size_t max_depth) {
  return fmt::format("the JSON nests arrays and objects deeper than {} levels", max_depth);
}

// nlohmann's account of a body simdjson found malformed: the byte where it stopped and what it
// read there, or nesting past the limit that comes first (a truncated body of 100,000 brackets
// is refused for its depth, as by the walk).
class FirstProblem : public detail::NestingSax {
 public:
  explicit FirstProblem(std::size_t max_depth) : max_depth_(max_depth) {}
  std::optional<std::string> message;

  bool start_object(std::size_t) override { return open(); }
  bool key(string_t&) override { return true; }
  bool end_object() override { return close(); }
  bool start_array(std::size_t) override { return open(); }
  bool end_array() override { return close(); }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& error) override {
    if (!message) message = malformed_json_message(position, error);
    return false;
  }

 private:
  bool open() {
    if (++depth_ <= max_depth_) return true;
    message = too_deep_message(max_depth_);
    return false;
  }
  bool close() {
    --depth_;
    return true;
  }

  std::size_t max_depth_, depth_ = 0;
};

RequestError malformed(std::string_view body, std::size_t max_depth, simdjson::error_code code) {
  FirstProblem first(max_depth);
  nlohmann::json::sax_parse(body.begin(), body.end(), &first);
  if (first.message) return RequestError(400, *first.message);
  // nlohmann ends the text at a NUL byte, so "{...}\0..." passes it.
  if (const std::size_t nul = body.find('\0'); nul != std::string_view::npos)
    return RequestError(400, fmt::format("malformed JSON at byte {}: a NUL byte", nul + 1));
  return RequestError(400, fmt::format("malformed JSON: {}", simdjson::error_message(code)));
}

od::parser& parser_for(std::size_t body_bytes, std::unique_ptr<od::parser>& own) {
  if (body_bytes <= kKeptParserBytes) {
    thread_local od::parser kept(kKeptParserBytes);
    return kept;
  }
  own = std::make_unique<od::parser>(body_bytes);
  return *own;
}

// The walk over the body. Nesting levels count from the body's object (1): "inputs" is 2, an
// input 3, its "data" 4. Every problem throws RequestError.
class RequestWalker {
 public:
  RequestWalker(const ModelSignature& signature, const RequestLimits& limits)
      : signature_(signature), limits_(limits), tabular_(!signature.columns.empty()) {}

  void document(od::document& doc, std::string_view body) {
    const od::json_type type = take(doc.type());
    if (type == od::json_type::array)
      fail("the body is a JSON array; an inference request is a JSON object");
    if (type != od::json_type::object) {
      if (!nlohmann::json::accept(body.begin(), body.end()))
        throw simdjson_error(simdjson::TAPE_ERROR);
      fail(fmt::format("the body is {}; an inference request is a JSON object", type_words(type)));
    }
    for (auto item : take(doc.get_object())) {
      od::field field = take(std::move(item));
      set_key(field);
      first_time(root_keys_, {"id", "inputs", "outputs", "parameters"}, "");
      root_value(field.value());
    }
    if (doc.current_location().error() == simdjson::SUCCESS)
      throw simdjson_error(simdjson::TRAILING_CONTENT);
    out_.saw_inputs_key = (root_keys_ & 2u) != 0;
    out_.inputs_seen = inputs_seen_;
  }

  RequestJson& result() { return out_; }

 private:
  enum class Where { Root, Input, Output };

  [[noreturn]] static void fail(const std::string& message) { throw RequestError(400, message); }

  void enter(std::size_t level) const {
    if (level > limits_.max_depth) fail(too_deep_message(limits_.max_depth));
  }

  void set_key(od::field& field) { key_ = take(field.unescaped_key()); }

  // A key seen twice in one object is an error: which value counts would be a guess.
  void first_time(std::uint32_t& seen, std::initializer_list<const char*> known,
                  const std::string& where) const {
    std::uint32_t bit = 1;
    for (const char* name : known) {
      if (key_ == name) {
        if (seen & bit) fail(fmt::format("{}\"{}\" appears twice", where, key_));
        seen |= bit;
        return;
      }
      bit <<= 1;
    }
  }

  // The expected type of each known key, for messages; nullptr for keys this server ignores.
  const char* expected_type(Where where) const {
    if (where == Where::Root) {
      if (key_ == "id") return "a string";
      if (key_ == "inputs" || key_ == "outputs") return "an array of objects";
      if (key_ == "parameters") return "an object";
    } else if (where == Where::Input) {
      if (key_ == "name" || key_ == "datatype") return "a string";
      if (key_ == "shape") return "an array of integers";
      if (key_ == "data") return "an array of numbers";
      if (key_ == "parameters") return "an object";
    } else {
      if (key_ == "name") return "a string";
      if (key_ == "parameters") return "an object";
    }
    return nullptr;
  }

  std::string field_path(Where where) const {
    switch (where) {
      case Where::Input:
        return input_path() + "." + key_;
      case Where::Output:
        return fmt::format("outputs[{}].{}", out_.requested_outputs.size(), key_);
      default:
        return key_;
    }
  }

  // The value of a known key, of the wrong type; any other key's value, read and ignored.
  void other_value(Where where, od::value& value, std::size_t level) {
    if (const char* expected = expected_type(where))
      fail(fmt::format("\"{}\" is {}; expected {}", field_path(where), kind_of(value), expected));
    skip(value, level);
  }

  // Reads a value whole (so that it is valid JSON) and ignores it.
  void skip(od::value& value, std::size_t level) {
    switch (take(value.type())) {
      case od::json_type::object:
        enter(level);
        for (auto item : take(value.get_object())) {
          od::field field = take(std::move(item));
          take(field.unescaped_key());
          skip(field.value(), level + 1);
        }
        return;
      case od::json_type::array:
        enter(level);
        for (auto item : take(value.get_array())) {
          od::value element = take(std::move(item));
          skip(element, level + 1);
        }
        return;
      default:
        kind_of(value);
    }
  }

  bool is(od::value& value, od::json_type type) { return take(value.type()) == type; }

  std::string take_string(od::value& value) { return std::string(take(value.get_string())); }

  void root_value(od::value& value) {
    if (key_ == "id" && is(value, od::json_type::string)) {
      out_.id = take_string(value);
    } else if (key_ == "inputs" && is(value, od::json_type::array)) {
      enter(2);
      inputs(take(value.get_array()));
    } else if (key_ == "outputs" && is(value, od::json_type::array)) {
      enter(2);
      outputs(take(value.get_array()));
    } else if (key_ == "parameters" && is(value, od::json_type::object)) {
      skip(value, 2);
    } else {
      other_value(Where::Root, value, 2);
    }
  }

  void inputs(od::array array) {
    for (auto item : array) {
      od::value value = take(std::move(item));
      const od::json_type type = take(value.type());
      if (type == od::json_type::array)
        fail(fmt::format("inputs[{}] is an array; each input is an object", input_elements_));
      if (type != od::json_type::object)
        fail(fmt::format("inputs[{}] is {}; each input is an object", input_elements_,
                         kind_of(value)));
      enter(3);
      ++input_elements_;
      if (inputs_seen_ >= 1 && !tabular_)
        fail(fmt::format("the request has more than one input; this model takes one, {}",
                         json_quoted(signature_.input_name)));
      if (tabular_ && inputs_seen_ >= static_cast<int>(signature_.columns.size()))
        fail(fmt::format(
            "inputs[{}]: the request has more than {} inputs; this model takes one per column: {}",
            input_elements_ - 1, signature_.columns.size(), column_list(signature_)));
      if (inputs_seen_ >= 1) {
        out_.inputs.emplace_back();
        input_keys_ = 0;
      }
      ++inputs_seen_;
      input(take(value.get_object()));
    }
  }

  void input(od::object object) {
    for (auto item : object) {
      od::field field = take(std::move(item));
      set_key(field);
      first_time(input_keys_, {"name", "shape", "datatype", "data", "parameters"},
                 input_path() + ".");
      od::value& value = field.value();
      InputTensor& tensor = current();
      if ((key_ == "name" || key_ == "datatype") && is(value, od::json_type::string)) {
        (key_ == "name" ? tensor.name : tensor.datatype) = take_string(value);
      } else if (key_ == "shape" && is(value, od::json_type::array)) {
        enter(4);
        tensor.has_shape = true;
        shape(take(value.get_array()));
      } else if (key_ == "data" && is(value, od::json_type::array)) {
        enter(4);
        tensor.has_data = true;
        if (tensor.data.empty()) reserve_data();
        data(take(value.get_array()), 4);
      } else if (key_ == "parameters" && is(value, od::json_type::object)) {
        skip(value, 4);
      } else {
        other_value(Where::Input, value, 4);
      }
    }
  }

  void shape(od::array array) {
    std::vector<std::int64_t>& shape = current().shape;
    for (auto item : array) {
      od::value value = take(std::move(item));
      const std::string where = fmt::format("{}.shape[{}]", input_path(), shape.size());
      switch (take(value.type())) {
        case od::json_type::number:
          break;
        case od::json_type::array:
          fail(where + " is an array; a shape is a flat list of integers");
        case od::json_type::object:
          fail(where + " is an object; dimensions are non-negative integers");
        default:
          fail(
              fmt::format("{} is {}; dimensions are non-negative integers", where, kind_of(value)));
      }
      const std::string text = number_text(value);
      const Number number = read_number(value);
      if (number.kind == Number::Kind::Float)
        fail(fmt::format("{} is {}; dimensions are non-negative integers", where, text));
      if (number.kind == Number::Kind::Negative)
        fail(fmt::format("{} is {}; dimensions are non-negative integers", where, number.negative));
      if (shape.size() >= kMaxRank)
        fail(fmt::format("{}.shape has more than {} dimensions", input_path(), kMaxRank));
      constexpr auto kLargest =
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
      if (number.non_negative > kLargest)
        fail(fmt::format("{} is {}, beyond any tensor size", where, number.non_negative));
      shape.push_back(static_cast<std::int64_t>(number.non_negative));
    }
  }

  // The values of "data", flat or in nested arrays (`level` is this array's).
  void data(od::array array, std::size_t level) {
    for (auto item : array) {
      od::value value = take(std::move(item));
      switch (take(value.type())) {
        case od::json_type::number:
          data_number(read_number(value));
          break;
        case od::json_type::array:
          enter(level + 1);
          data(take(value.get_array()), level + 1);
          break;
        case od::json_type::string:
          if (!tabular_) wrong_data_value(value);
          count_element();
          current().saw_string = true;
          current().strings.push_back(take_string(value));
          current().nulls.push_back(0);
          break;
        case od::json_type::null:
          if (!tabular_) wrong_data_value(value);
          kind_of(value);  // reads it: "nul" is malformed
          count_element();
          current().data.push_back(std::numeric_limits<float>::quiet_NaN());
          current().strings.push_back("");
          current().nulls.push_back(1);
          break;
        default:
          wrong_data_value(value);
      }
    }
  }

  [[noreturn]] void wrong_data_value(od::value& value) {
    fail(fmt::format("{}.data holds {}; it holds {}, flat or in nested arrays", input_path(),
                     kind_of(value), tabular_ ? "numbers, strings or nulls" : "numbers"));
  }

  [[gnu::always_inline]] void data_number(const Number& number) {
    InputTensor& tensor = current();
    switch (number.kind) {
      case Number::Kind::Negative:
        tensor.min_integer = std::min(tensor.min_integer, number.negative);
        break;
      case Number::Kind::NonNegative:
        tensor.max_integer = std::max(tensor.max_integer, number.non_negative);
        break;
      case Number::Kind::Float:
        // 3.0 is an integer, as JSON writers print whole doubles; 3.5 is not.
        if (std::trunc(number.value) != number.value) {
          tensor.saw_fraction = true;
        } else {
          tensor.min_whole_float = std::min(tensor.min_whole_float, number.value);
          tensor.max_whole_float = std::max(tensor.max_whole_float, number.value);
        }
        break;
    }
    double value = number.value;
    if (tabular_) {
      count_element();
      tensor.saw_number = true;
      tensor.nulls.push_back(0);
    } else if (static_cast<std::int64_t>(tensor.data.size()) >= limits_.max_elements) {
      fail(fmt::format("inputs[0].data holds more than {} values, the limit of this server",
                       limits_.max_elements));
    }
    if (!(std::fabs(value) <= static_cast<double>(FLT_MAX))) {
      tensor.saw_fp32_overflow = true;
      value = 0;
    }
    tensor.data.push_back(static_cast<float>(value));
  }

  void outputs(od::array array) {
    std::vector<std::string>& requested = out_.requested_outputs;
    for (auto item : array) {
      od::value value = take(std::move(item));
      const od::json_type type = take(value.type());
      if (type == od::json_type::array)
        fail(fmt::format("outputs[{}] is an array; each output is an object", requested.size()));
      if (type != od::json_type::object)
        fail(fmt::format("outputs[{}] is {}; each output is an object", requested.size(),
                         kind_of(value)));
      enter(3);
      if (requested.size() >= kMaxOutputs)
        fail(fmt::format("\"outputs\" lists more than {} outputs", kMaxOutputs));
      std::optional<std::string> name;
      std::uint32_t keys = 0;
      for (auto field_item : take(value.get_object())) {
        od::field field = take(std::move(field_item));
        set_key(field);
        first_time(keys, {"name", "parameters"}, fmt::format("outputs[{}].", requested.size()));
        od::value& field_value = field.value();
        if (key_ == "name" && is(field_value, od::json_type::string))
          name = take_string(field_value);
        else if (key_ == "parameters" && is(field_value, od::json_type::object))
          skip(field_value, 4);
        else
          other_value(Where::Output, field_value, 4);
      }
      if (!name) fail(fmt::format("outputs[{}] has no \"name\"", requested.size()));
      requested.push_back(std::move(*name));
    }
  }

  InputTensor& current() { return out_.inputs.back(); }

  // The path of the input being read: "inputs[i]".
  std::string input_path() const { return fmt::format("inputs[{}]", out_.inputs.size() - 1); }

  // Every value of every input of a table counts against the element limit.
  void count_element() {
    if (elements_ >= limits_.max_elements)
      fail(fmt::format("{}.data holds more than {} values, the limit of this server", input_path(),
                       limits_.max_elements));
    ++elements_;
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
  RequestJson out_;
  std::string key_;
  std::int64_t elements_ = 0;  // values of all inputs of a table
  std::uint32_t root_keys_ = 0, input_keys_ = 0;
  int inputs_seen_ = 0;
  int input_elements_ = 0;  // values seen in "inputs", for messages
};

}  // namespace

RequestJson read_request_json(std::string_view body, const ModelSignature& signature,
                              const RequestLimits& limits) {
  const simdjson::padded_string padded(body);
  std::unique_ptr<od::parser> own;
  od::parser& parser = parser_for(body.size(), own);
  RequestWalker walker(signature, limits);
  try {
    od::document doc = take(parser.iterate(padded));
    walker.document(doc, body);
  } catch (const simdjson_error& e) {
    throw malformed(body, limits.max_depth, e.error());
  }
  return std::move(walker.result());
}

}  // namespace lathe::serve
