#pragma once
// JSON from files lathe did not write (safetensors headers, bundle metadata): parsed with limits
// that keep later recursive code (dump, copy, comparison) on a bounded stack, and shown in
// messages without control bytes.
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace lathe::detail {

// Parses `text`, rejecting nesting deeper than `max_depth` (the top-level value is depth 1) and
// an object with the same key twice (which nlohmann would silently resolve to the last value).
// Errors are lathe::Error "<context>: ..." with the byte position and the offending key.
nlohmann::json parse_untrusted_json(std::string_view text, const std::string& context,
                                    int max_depth);

// A SAX handler that accepts every value: the base of checks that look only at the nesting.
class NestingSax : public nlohmann::json_sax<nlohmann::json> {
 public:
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
};

// nlohmann's message without its "[json.exception.parse_error.101] " prefix, which says nothing
// to a user.
std::string json_error_text(const std::exception& error);

// `text` for an error message: control bytes and DEL become \xNN, and so do bytes of 0x80 and
// above unless `keep_utf8` (for text already known to be valid UTF-8, like parsed JSON strings).
std::string printable(std::string_view text, bool keep_utf8 = true);

// A JSON value for an error message: scalars and short values as JSON, longer ones cut at
// `max_chars`; a value nested more than 64 levels deep is described, not dumped, so any parsed
// value is safe to show.
std::string shown_json(const nlohmann::json& value, std::size_t max_chars = 60);

}  // namespace lathe::detail
