// TOML text to a toml++ table, made safe for the toml++ that Debian 12 ships (3.3.0): text that
// would lead it into undefined behaviour is refused first, with its line and column.
#pragma once

#include <toml++/toml.h>
#include <string>
#include <string_view>

namespace lathe {

// Parses `text`; errors name `where:line:column`.
toml::table parse_toml(std::string_view text, const std::string& where);

// Whether `text` holds something parse_toml refuses before toml++ sees it.
bool has_toml_hazard(std::string_view text);

// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF).
bool valid_utf8(std::string_view text);

}  // namespace lathe
