// Pieces of the error messages that the request parsers send back to clients: JSON text the
// client wrote, quoted and cut short so that a hostile body cannot make a huge reply.
#pragma once

#include <cstddef>
#include <exception>
#include <string>

namespace lathe::serve {

// The most characters of client-written text that one message repeats.
inline constexpr std::size_t kMaxErrorTokenChars = 120;

// `text` cut to kMaxErrorTokenChars, with "..." when something was cut.
std::string cut_short(const std::string& text);

// `text` as a JSON string, cut short. A cut that splits a UTF-8 sequence shows U+FFFD there.
std::string json_quoted(const std::string& text);

// "malformed JSON at byte N: syntax error ..." from nlohmann's parse error, without its
// "[json.exception...]" prefix, and cut short (it repeats the token it read, which can be long).
std::string malformed_json_message(std::size_t position, const std::exception& error);

}  // namespace lathe::serve
