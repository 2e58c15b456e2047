#include "src/io/toml_text.h"

#include <fmt/format.h>

#include <optional>

#include "lathe/error.h"
#include "src/data/utf8.h"

namespace lathe {
namespace {

// toml++ 3.3.0 (Debian 12's) reaches __builtin_unreachable() -- undefined behaviour -- when it
// asks whether certain non-ASCII code points are whitespace: U+00A1..U+0499, U+2C5E..U+3057
// (but U+3000) and U+FB26..U+FEFE, the chunks its generated lookup leaves to an empty switch
// (upstream issues marzer/tomlplusplus#190 and #295, found here by fuzz/fuzz_config.cpp). It asks
// at token boundaries, after a backslash in a multi-line basic string, and while skipping the
// whitespace after a line-ending backslash. This finds those places before toml++ sees the text:
// non-ASCII outside strings and comments is never valid TOML, and the string cases are rejected
// only for the code points toml++ mishandles.
struct TomlHazard {
  std::size_t line = 0, column = 0;
  std::string what;
};

bool toml_cannot_classify(char32_t c) {
  if (c <= U'\xA0' || c >= U'\uFEFF' || c == U'\u3000') return false;
  const auto chunk = (static_cast<std::uint32_t>(c) - 0xA0u) / 0x3FAu;
  return chunk == 0 || chunk == 11 || chunk == 63;
}

// The code point at text[i] (UTF-8), or U+FFFD for an invalid sequence (toml++ rejects those).
char32_t code_point_at(std::string_view text, std::size_t i) {
  const auto byte = [&](std::size_t k) {
    return k < text.size() ? static_cast<unsigned char>(text[k]) : 0u;
  };
  const unsigned lead = byte(i);
  if (lead < 0x80) return lead;
  const int length = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 0;
  if (length == 0) return U'\uFFFD';
  char32_t c = lead & (0x3Fu >> (length - 1));
  for (int k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xC0u) != 0x80u) return U'\uFFFD';
    c = c << 6 | (byte(i + k) & 0x3Fu);
  }
  return c;
}

std::size_t utf8_length(char lead) {
  const auto byte = static_cast<unsigned char>(lead);
  return byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1;
}

// Whitespace as toml++ classifies it (or more): ASCII space, tab, LF..CR, and the Unicode spaces
// and line separators.
bool toml_whitespace(char32_t c) {
  return c == U' ' || c == U'\t' || (c >= U'\n' && c <= U'\r') || c == U'\x85' || c == U'\xA0' ||
         c == U'\u1680' || c == U'\u180E' || (c >= U'\u2000' && c <= U'\u200B') ||
         (c >= U'\u2028' && c <= U'\u2029') || c == U'\u202F' ||
         (c >= U'\u205F' && c <= U'\u2060') || c == U'\u3000' || c == U'\uFEFF';
}

std::optional<TomlHazard> find_toml_hazard(std::string_view text) {
  enum class State { Normal, Comment, Basic, Literal, MultiBasic, MultiLiteral };
  State state = State::Normal;
  bool token_start = true;      // whether a value or key may start here (see State::Normal)
  bool scanning_value = false;  // inside a value toml++ scans ahead through (see State::Normal)
  bool continued_date = false;
  std::size_t value_start = 0;
  std::size_t line = 1, line_start = 0;
  const auto hazard = [&](std::size_t at, std::string what) {
    return TomlHazard{line, at - line_start + 1, std::move(what)};
  };
  const auto quotes_at = [&](std::size_t i, char quote) {
    std::size_t n = 0;
    while (i + n < text.size() && text[i + n] == quote) ++n;
    return n;
  };
  // A byte order mark at the start is not content (toml++ skips it too).
  const std::size_t start = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  for (std::size_t i = start; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = i + 1;
      if (state == State::Comment || state == State::Basic || state == State::Literal)
        state = State::Normal;
      if (state == State::Normal) token_start = true, scanning_value = false;
      continue;
    }
    switch (state) {
      case State::Normal: {
        // toml++ reads a value that starts with a digit or a sign by scanning ahead to the next
        // whitespace, ']', '}', ',' or '#', classifying each character (and on past one space
        // after a date, for a date-time), whatever the characters are: quotes there start no
        // string. Elsewhere a quote starts a string only where a value or key may start: after
        // whitespace, '=', '[', '{' or ','. Anything else is reported conservatively: toml++
        // has stopped at an error by then, and lathe's own keys are ASCII.
        const bool terminator =
            c == ' ' || c == '\t' || c == '\r' || c == ']' || c == '}' || c == ',' || c == '#';
        if (scanning_value && terminator) {
          const std::string_view token = text.substr(value_start, i - value_start);
          const bool date = token.size() == 10 && token[4] == '-' && token[7] == '-';
          if (!(c == ' ' && date && !continued_date)) {
            scanning_value = false;
          } else {
            continued_date = true;  // "1979-05-27 07:32:00": one more scan past the space
            break;
          }
        }
        if (scanning_value) {
          if (static_cast<unsigned char>(c) >= 0x80)
            return hazard(i, "a non-ASCII character outside a string or comment");
          break;
        }
        if (c == '#') {
          state = State::Comment;
        } else if ((c == '"' || c == '\'') && token_start) {
          const bool multi = quotes_at(i, c) >= 3;
          state = c == '"' ? (multi ? State::MultiBasic : State::Basic)
                           : (multi ? State::MultiLiteral : State::Literal);
          if (multi) i += 2;
        } else if (static_cast<unsigned char>(c) >= 0x80) {
          return hazard(i, "a non-ASCII character outside a string or comment");
        } else if (token_start && ((c >= '0' && c <= '9') || c == '+' || c == '-')) {
          scanning_value = true;
          continued_date = false;
          value_start = i;
        }
        token_start =
            c == ' ' || c == '\t' || c == '\r' || c == '=' || c == '[' || c == '{' || c == ',';
        break;
      }
      case State::Comment:
        break;
      case State::Basic:
        if (c == '\\' && i + 1 < text.size() && text[i + 1] != '\n')
          ++i;  // the escaped character (toml++ does not classify it in one-line strings)
        else if (c == '"')
          state = State::Normal, token_start = false;
        break;
      case State::Literal:
        if (c == '\'') state = State::Normal, token_start = false;
        break;
      case State::MultiBasic:
      case State::MultiLiteral: {
        const char quote = state == State::MultiBasic ? '"' : '\'';
        if (c == quote) {
          const std::size_t run = quotes_at(i, quote);
          if (run >= 3) state = State::Normal, token_start = false;
          i += std::min<std::size_t>(run, 5) - 1;  // up to two quotes belong to the content
        } else if (c == '\\' && state == State::MultiBasic && i + 1 < text.size()) {
          const char next = text[i + 1];
          if (static_cast<unsigned char>(next) >= 0x80)
            return hazard(i + 1, "a non-ASCII character after a backslash");
          if (next != ' ' && next != '\t' && next != '\r' && next != '\n') {
            ++i;  // an ordinary escape
            break;
          }
          // A line-ending backslash: toml++ skips whitespace (its own, wider set) up to the next
          // character, which it classifies.
          std::size_t k = i + 1;
          while (k < text.size() && toml_whitespace(code_point_at(text, k))) {
            if (text[k] == '\n') {
              ++line;
              line_start = k + 1;
            }
            k += utf8_length(text[k]);
          }
          if (k < text.size() && toml_cannot_classify(code_point_at(text, k)))
            return hazard(k, fmt::format("U+{:04X} first after a line-ending backslash (toml++ "
                                         "mishandles it; escape it as \\u{:04X})",
                                         static_cast<std::uint32_t>(code_point_at(text, k)),
                                         static_cast<std::uint32_t>(code_point_at(text, k))));
          i = k - 1;
        }
        break;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

bool has_toml_hazard(std::string_view text) {
  return find_toml_hazard(text).has_value();
}

toml::table parse_toml(std::string_view text, const std::string& where) {
  if (const auto hazard = find_toml_hazard(text))
    throw Error(fmt::format("{}:{}:{}: {}", where, hazard->line, hazard->column, hazard->what));
  try {
    return toml::parse(text, where);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("{}:{}:{}: {}", where, e.source().begin.line, e.source().begin.column,
                            e.description()));
  }
}

bool valid_utf8(std::string_view text) {
  return detail::utf8_problem(text).empty();
}

}  // namespace lathe
