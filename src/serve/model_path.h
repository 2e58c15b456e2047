#pragma once
// Internal: what a /v2/models/{name}[/versions/{version}][/{action}] path names.
#include <optional>
#include <string_view>

namespace lathe::serve {

struct ModelPath {
  std::string_view name;
  std::optional<std::string_view> version;
  std::string_view action;  // "" (the model's metadata), "ready", "infer" or "generate"
};

// nullopt for every other path, an empty name or version, or another action.
std::optional<ModelPath> parse_model_path(std::string_view path);

}  // namespace lathe::serve
