#include "src/serve/model_path.h"

namespace lathe::serve {
namespace {

// The segment before the next '/' (all of `rest` when there is none); moves `rest` past it.
std::string_view next_segment(std::string_view& rest) {
  const std::size_t slash = rest.find('/');
  const std::string_view segment = rest.substr(0, slash);
  rest = slash == std::string_view::npos ? std::string_view() : rest.substr(slash);
  return segment;
}

}  // namespace

std::optional<ModelPath> parse_model_path(std::string_view path) {
  constexpr std::string_view prefix = "/v2/models/";
  if (path.substr(0, prefix.size()) != prefix) return std::nullopt;
  std::string_view rest = path.substr(prefix.size());
  ModelPath parsed;
  parsed.name = next_segment(rest);
  if (parsed.name.empty()) return std::nullopt;
  constexpr std::string_view versions = "/versions/";
  if (rest.substr(0, versions.size()) == versions) {
    rest.remove_prefix(versions.size());
    parsed.version = next_segment(rest);
    if (parsed.version->empty()) return std::nullopt;
  }
  if (rest.empty()) return parsed;
  rest.remove_prefix(1);
  if (rest != "ready" && rest != "infer" && rest != "generate") return std::nullopt;
  parsed.action = rest;
  return parsed;
}

}  // namespace lathe::serve
