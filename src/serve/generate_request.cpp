// parse_generate_request: one SAX pass over the body. The request is a flat object, so any
// array or object inside it is an error at its first bracket: nothing nests, nothing recurses,
// and no document tree is built.
#include "src/serve/generate_request.h"

#include "src/serve/json_messages.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>

namespace lathe::serve {
namespace {

using json = nlohmann::json;

enum class Field { Prompt, MaxTokens, Temperature, TopK, Seed, Stream };
constexpr std::pair<const char*, Field> kFields[] = {{"prompt", Field::Prompt},
                                                     {"max_tokens", Field::MaxTokens},
                                                     {"temperature", Field::Temperature},
                                                     {"top_k", Field::TopK},
                                                     {"seed", Field::Seed},
                                                     {"stream", Field::Stream}};

// A number as it was written, for messages: integers exactly, others as the JSON text (cut short).
struct NumberText {
  bool negative = false;
  std::uint64_t magnitude = 0;  // when integral and within 64 bits
  bool integral = true;
  double value = 0;
  std::string text;
};

class GenerateRequestSax {
 public:
  explicit GenerateRequestSax(const GenerateLimits& limits) : limits_(limits) {}

  // ---- nlohmann::json SAX interface ----
  bool null() { return wrong_type("null"); }
  bool boolean(bool value) {
    if (depth_ == 1 && field_ == Field::Stream) {
      request_.stream = value;
      return true;
    }
    return wrong_type("a boolean");
  }
  bool number_integer(json::number_integer_t value) {
    // nlohmann reports non-negative integers through number_unsigned, so this one is negative.
    NumberText number;
    number.negative = value < 0;  // -0 is the integer 0
    number.magnitude = static_cast<std::uint64_t>(-(value + 1)) + 1;
    number.value = static_cast<double>(value);
    number.text = std::to_string(value);
    return numeric(number);
  }
  bool number_unsigned(json::number_unsigned_t value) {
    NumberText number;
    number.magnitude = value;
    number.value = static_cast<double>(value);
    number.text = std::to_string(value);
    return numeric(number);
  }
  bool number_float(json::number_float_t value, const std::string& text) {
    NumberText number;
    number.value = value;
    number.negative = value < 0;
    number.text = cut_short(text);
    // 3.0 counts as the integer 3 (some JSON writers print whole numbers so); 3.5 does not.
    number.integral = std::isfinite(value) && std::trunc(value) == value &&
                      std::fabs(value) < 18446744073709551616.0;  // 2^64
    if (number.integral) number.magnitude = static_cast<std::uint64_t>(std::fabs(value));
    return numeric(number);
  }
  bool string(std::string& value) {
    if (depth_ == 1 && field_ == Field::Prompt) {
      request_.prompt = std::move(value);
      return true;
    }
    return wrong_type("a string");
  }
  bool binary(json::binary_t&) { return fail("the body holds binary data; send JSON text"); }

  bool start_object(std::size_t) {
    if (depth_ == 0) {
      depth_ = 1;
      saw_root_ = true;
      return true;
    }
    return wrong_type("an object");
  }
  bool start_array(std::size_t) { return wrong_type("an array"); }
  bool end_object() {
    depth_ = 0;
    return true;
  }
  bool end_array() { return true; }  // never reached: every array fails at its start

  bool key(std::string& name) {
    for (const auto& [known, field] : kFields) {
      if (name != known) continue;
      const auto bit = 1u << static_cast<unsigned>(field);
      if (seen_ & bit) return fail(fmt::format("\"{}\" appears twice", known));
      seen_ |= bit;
      field_ = field;
      return true;
    }
    return fail(fmt::format(
        "unknown field {}; a generate request has \"prompt\" (required), \"max_tokens\", "
        "\"temperature\", \"top_k\", \"seed\" and \"stream\"",
        json_quoted(name)));
  }

  bool parse_error(std::size_t position, const std::string&, const json::exception& e) {
    if (error_) return false;  // a handler stopped the parse; keep its message
    return fail(malformed_json_message(position, e));
  }

  // ---- results ----
  const std::optional<RequestError>& error() const { return error_; }
  bool saw_root() const { return saw_root_; }
  bool saw(Field field) const { return (seen_ & (1u << static_cast<unsigned>(field))) != 0; }
  GenerateRequest& request() { return request_; }

 private:
  static const char* name_of(Field field) {
    for (const auto& [name, known] : kFields)
      if (known == field) return name;
    return "?";
  }

  std::string expected(Field field) const {
    switch (field) {
      case Field::Prompt:
        return "a non-empty string";
      case Field::MaxTokens:
        return fmt::format("an integer in [0, {}] (this server's limit)", limits_.max_tokens);
      case Field::Temperature:
        return "a number >= 0 (0: always the most likely token)";
      case Field::TopK:
        return "an integer >= 0 (0: every token)";
      case Field::Seed:
        return "an integer in [0, 18446744073709551615]";
      case Field::Stream:
        return "true or false";
    }
    return "?";
  }

  bool fail(std::string message) {
    if (!error_) error_.emplace(400, std::move(message));
    return false;
  }

  bool wrong_type(const char* what) {
    if (depth_ == 0)
      return fail(fmt::format("the body is {}; a generate request is a JSON object", what));
    return fail(fmt::format("\"{}\" is {}; expected {}", name_of(field_), what, expected(field_)));
  }

  bool out_of_range(const NumberText& number) {
    return fail(
        fmt::format("\"{}\" is {}; expected {}", name_of(field_), number.text, expected(field_)));
  }

  bool numeric(const NumberText& number) {
    if (depth_ == 0) return wrong_type("a number");
    switch (field_) {
      case Field::Temperature:
        if (!(number.value >= 0) || !std::isfinite(number.value)) return out_of_range(number);
        request_.temperature = number.value;
        return true;
      case Field::MaxTokens:
        if (!number.integral || number.negative ||
            number.magnitude > static_cast<std::uint64_t>(limits_.max_tokens))
          return out_of_range(number);
        request_.max_tokens = static_cast<std::int64_t>(number.magnitude);
        return true;
      case Field::TopK:
        if (!number.integral || number.negative ||
            number.magnitude > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
          return out_of_range(number);
        request_.top_k = static_cast<std::int64_t>(number.magnitude);
        return true;
      case Field::Seed:
        if (!number.integral || number.negative) return out_of_range(number);
        request_.seed = number.magnitude;
        return true;
      case Field::Prompt:
      case Field::Stream:
        return wrong_type("a number");
    }
    return false;
  }

  const GenerateLimits& limits_;
  int depth_ = 0;
  bool saw_root_ = false;
  unsigned seen_ = 0;
  Field field_ = Field::Prompt;
  GenerateRequest request_;
  std::optional<RequestError> error_;
};

}  // namespace

GenerateRequest parse_generate_request(std::string_view body, const GenerateLimits& limits) {
  GenerateRequestSax sax(limits);
  const bool parsed =
      json::sax_parse(body.data(), body.data() + body.size(), &sax, json::input_format_t::json);
  if (sax.error()) throw *sax.error();
  if (!parsed || !sax.saw_root()) bad_request("malformed JSON");
  if (!sax.saw(Field::Prompt)) bad_request("the request has no \"prompt\"");
  GenerateRequest& request = sax.request();
  if (request.prompt.empty())
    bad_request("\"prompt\" is empty; the model needs at least one token to start from");
  if (static_cast<std::int64_t>(request.prompt.size()) > limits.max_prompt_bytes)
    bad_request(fmt::format("\"prompt\" is {} bytes, more than this server's limit of {}",
                            request.prompt.size(), limits.max_prompt_bytes));
  return std::move(request);
}

}  // namespace lathe::serve
