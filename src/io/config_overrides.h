// `--set key.path=value`: one override of a run configuration, written into its TOML table
// before the configuration is read (lathe train --set, and every command that takes a config).
#pragma once

#include <toml++/toml.h>
#include <string>

namespace lathe::detail {

// The source name of the nodes an override wrote: toml++ copies no position with them, so errors
// about them name this instead of a line.
inline constexpr const char* kOverrideSource = "--set";

// Writes `assignment` ("a.b.c=value") into `root`: the value as TOML, or else as a string (paths,
// names); numeric keys index into existing arrays. Throws Error naming the assignment.
void apply_override(toml::table& root, const std::string& assignment);

}  // namespace lathe::detail
