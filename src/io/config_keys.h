#pragma once
// Internal: every key of a `lathe train` config, with its type, default, allowed values or range
// and one line of meaning. The config reader validates against this table (a key it reads must
// be here; a key in a file must be here; values outside the range are errors at the key's line),
// and docs/config.md is generated from it (`lathe config-reference`), so the two cannot drift.
#include <optional>
#include <string>
#include <vector>

namespace lathe::detail {

struct ConfigKey {
  enum class Type { Integer, Number, Boolean, String, Path, Strings, Table, Map, BooleanOrStrings };
  std::string section;  // "trainer"
  std::string key;      // "epochs"
  Type type;
  std::string default_text;          // as docs/config.md shows it
  std::vector<std::string> allowed;  // for strings: the values allowed (empty: any)
  std::optional<double> minimum;     // for numbers and integers
  bool minimum_exclusive = false;    // minimum < value rather than <=
  std::optional<double> maximum;
  bool maximum_exclusive = false;
  std::string help;
};

// In the order of docs/config.md (and of "allowed:" lists in errors).
const std::vector<ConfigKey>& config_keys();
const std::vector<std::string>& config_sections();

// The key `section.key`, or null.
const ConfigKey* find_config_key(const std::string& section, const std::string& key);

// "in [0, 1)", "at least 1", "> 0": the range of a numeric key, empty when it has none.
std::string range_text(const ConfigKey& key);

// docs/config.md: every section and key, and the model types of the layer registry.
std::string config_reference_markdown();

}  // namespace lathe::detail
