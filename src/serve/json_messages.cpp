#include "src/serve/json_messages.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "src/io/untrusted_json.h"

namespace lathe::serve {

std::string cut_short(const std::string& text) {
  return text.size() > kMaxErrorTokenChars ? text.substr(0, kMaxErrorTokenChars) + "..." : text;
}

std::string json_quoted(const std::string& text) {
  const bool cut = text.size() > kMaxErrorTokenChars;
  return nlohmann::json(cut ? text.substr(0, kMaxErrorTokenChars) : text)
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         (cut ? "..." : "");
}

std::string malformed_json_message(std::size_t position, const std::exception& error) {
  // nlohmann says what it expected and what it read ("syntax error while parsing value -
  // invalid literal; last read: 'x'").
  std::string what = error.what();
  const auto syntax = what.find("syntax error");
  if (syntax != std::string::npos)
    what.erase(0, syntax);
  else
    what = detail::json_error_text(error);  // "[json.exception.out_of_range.406] number ..."
  if (what.size() > 2 * kMaxErrorTokenChars) what = what.substr(0, 2 * kMaxErrorTokenChars) + "...";
  return fmt::format("malformed JSON at byte {}: {}", position, what);
}

}  // namespace lathe::serve
