// UTF-8 checked strictly (no overlong forms, surrogates or code points past U+10FFFF): the
// character tokenizer's corpus and the cells of a CSV table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace lathe::detail {

constexpr char32_t kMaxCodePoint = 0x10FFFF;

bool is_valid_code_point(std::int64_t c);

inline bool is_continuation(unsigned char byte) {
  return (byte & 0xC0) == 0x80;
}

// Decodes the code point that starts at `offset` into `code_point` and returns its length in
// bytes; throws an Error naming the offset when the bytes there are not valid UTF-8.
std::size_t decode_utf8(std::string_view text, std::size_t offset, char32_t& code_point);

// What is wrong with `text` as UTF-8 ("invalid UTF-8 at byte offset 3: 0xfc is ..."), or ""
// when it is valid.
std::string utf8_problem(std::string_view text);

void append_utf8(std::string& out, char32_t c);

}  // namespace lathe::detail
