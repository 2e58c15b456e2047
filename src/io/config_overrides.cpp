// `--set` overrides of a run configuration: see config_overrides.h.
#include "src/io/config_overrides.h"

#include <fmt/format.h>

#include <cctype>
#include <charconv>
#include <nlohmann/json.hpp>

#include "lathe/error.h"
#include "src/io/toml_text.h"

namespace lathe::detail {
namespace {

// Parses "a.b.c=value" into a one-key TOML table whose nodes carry the source "--set".
toml::table parse_override(const std::string& assignment) {
  const auto equals = assignment.find('=');
  if (equals == std::string::npos || equals == 0)
    throw Error(
        fmt::format("--set {}: expected key=value, e.g. --set trainer.epochs=2", assignment));
  const std::string key = assignment.substr(0, equals);
  const std::string value = assignment.substr(equals + 1);
  for (char c : key)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-'))
      throw Error(
          fmt::format("--set {}: '{}' is not a key path like trainer.epochs", assignment, key));
  // Checked here because the fallback below quotes the value with nlohmann::json, whose dump()
  // throws its own type_error on invalid UTF-8.
  if (!valid_utf8(value)) throw Error(fmt::format("--set {}: the value is not valid UTF-8", key));
  const std::string text = key + " = " + value;
  if (!has_toml_hazard(text)) {
    try {
      return toml::parse(text, std::string(kOverrideSource));
    } catch (const toml::parse_error&) {
    }
  }
  // Not a TOML value: take it as a string (paths, names). That fails too for a key like "a..b"
  // or a value with characters TOML strings must not hold (DEL).
  nlohmann::json quoted = value;
  try {
    return toml::parse(key + " = " + quoted.dump(), std::string(kOverrideSource));
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("--set {}: not a key path and a TOML value or string: {}", assignment,
                            e.description()));
  }
}

// Writes the leaves of `patch` into `target`; numeric keys index into existing arrays.
void merge(toml::node& target, const toml::node& patch, const std::string& path) {
  const toml::table* patch_table = patch.as_table();
  for (auto&& [key, value] : *patch_table) {
    const std::string k(key.str());
    const std::string child_path = path.empty() ? k : path + "." + k;
    toml::node* existing = nullptr;
    if (auto* table = target.as_table()) {
      existing = table->get(k);
      if (value.is_table() && !existing) {
        table->insert(k, toml::table{});
        existing = table->get(k);
      }
      if (!value.is_table() || !existing || !(existing->is_table() || existing->is_array())) {
        table->insert_or_assign(k, value);
        continue;
      }
    } else if (auto* array = target.as_array()) {
      std::size_t index = 0;
      const auto [end, error] = std::from_chars(k.data(), k.data() + k.size(), index);
      if (error != std::errc() || end != k.data() + k.size() || index >= array->size())
        throw Error(fmt::format("--set {}: '{}' is not an index of a list of {} items", child_path,
                                k, array->size()));
      existing = array->get(index);
      if (!value.is_table()) {
        array->replace(array->cbegin() + static_cast<std::ptrdiff_t>(index), value);
        continue;
      }
    } else {
      throw Error(fmt::format("--set {}: '{}' is not a table", child_path, path));
    }
    merge(*existing, value, child_path);
  }
}

}  // namespace

void apply_override(toml::table& root, const std::string& assignment) {
  merge(root, parse_override(assignment), "");
}

}  // namespace lathe::detail
