// UTF-8 decoding and checking (src/data/utf8.h).
#include "src/data/utf8.h"

#include <cstdint>

#include <fmt/format.h>

#include "lathe/error.h"

namespace lathe::detail {
namespace {

// The length of the sequence at `offset` (after decoding it into `code_point`), or 0 with
// `problem` saying what is wrong there.
std::size_t decode(std::string_view text, std::size_t offset, char32_t& code_point,
                   std::string& problem) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[offset + i]); };
  const unsigned char lead = byte(0);
  if (lead < 0x80) {
    code_point = lead;
    return 1;
  }
  std::size_t length = 0;
  unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // shorter forms are overlong
    if (lead == 0xED) high = 0x9F;  // U+D800..U+DFFF are surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;  // past U+10FFFF
  } else {
    const char* what = is_continuation(lead) ? "a continuation byte with no lead byte"
                       : lead < 0xC2         ? "the lead byte of an overlong encoding"
                                             : "a byte that never occurs in UTF-8";
    problem = fmt::format("invalid UTF-8 at byte offset {}: 0x{:02x} is {}", offset, lead, what);
    return 0;
  }
  if (offset + length > text.size()) {
    problem = fmt::format(
        "invalid UTF-8 at byte offset {}: the text ends inside a {}-byte sequence", offset, length);
    return 0;
  }
  for (std::size_t i = 1; i < length; ++i) {
    const unsigned char b = byte(i);
    const bool ok = i == 1 ? (b >= low && b <= high) : is_continuation(b);
    if (!ok) {
      problem = fmt::format(
          "invalid UTF-8 at byte offset {}: byte 0x{:02x} at offset {} does not continue the "
          "{}-byte sequence that starts with 0x{:02x}{}",
          offset, b, offset + i, length, lead,
          is_continuation(b) ? " (overlong, surrogate or past U+10FFFF)" : "");
      return 0;
    }
  }
  char32_t c = lead & (0xFF >> (length + 1));
  for (std::size_t i = 1; i < length; ++i) c = (c << 6) | (byte(i) & 0x3F);
  code_point = c;
  return length;
}

}  // namespace

bool is_valid_code_point(std::int64_t c) {
  return c >= 0 && c <= kMaxCodePoint && !(c >= 0xD800 && c <= 0xDFFF);
}

std::size_t decode_utf8(std::string_view text, std::size_t offset, char32_t& code_point) {
  std::string problem;
  const std::size_t length = decode(text, offset, code_point, problem);
  if (length == 0) throw Error(problem);
  return length;
}

std::string utf8_problem(std::string_view text) {
  std::string problem;
  char32_t c = 0;
  for (std::size_t offset = 0; offset < text.size();) {
    if (static_cast<unsigned char>(text[offset]) < 0x80) {
      ++offset;
      continue;
    }
    const std::size_t length = decode(text, offset, c, problem);
    if (length == 0) return problem;
    offset += length;
  }
  return "";
}

void append_utf8(std::string& out, char32_t c) {
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
}

}  // namespace lathe::detail
