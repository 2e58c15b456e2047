// Model bundles: one safetensors file with the weights and, in __metadata__, the architecture,
// preprocessing, task description and metrics as JSON strings.
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/version.h"

namespace lathe {
namespace {

constexpr const char* kFormat = "lathe.bundle/1";

nlohmann::json parse_metadata(const SafetensorsContents& contents, const std::string& key,
                              const std::string& where) {
  auto found = contents.metadata.find(key);
  if (found == contents.metadata.end())
    throw Error(fmt::format("{}: not a lathe bundle: metadata '{}' is missing", where, key));
  try {
    return nlohmann::json::parse(found->second);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: metadata '{}' is not valid JSON: {}", where, key, e.what()));
  }
}

}  // namespace

void save_bundle(const std::filesystem::path& path, const Module& model, const BundleInfo& info) {
  std::map<std::string, std::string> metadata{
      {"format", kFormat},
      {"lathe.version", version()},
      {"lathe.architecture", info.architecture.dump()},
      {"lathe.preprocessing", info.preprocessing.to_json().dump()},
      {"lathe.task", info.task.dump()},
      {"lathe.metrics", info.metrics.dump()},
  };
  save_safetensors(path, model.state_dict(), metadata);
}

LoadedBundle load_bundle(const std::filesystem::path& path) {
  const std::string where = path.string();
  const SafetensorsContents contents = load_safetensors(path);
  auto format = contents.metadata.find("format");
  if (format == contents.metadata.end() || format->second != kFormat)
    throw Error(
        fmt::format("{}: not a lathe bundle (metadata 'format' is not '{}')", where, kFormat));
  LoadedBundle bundle;
  bundle.info.architecture = parse_metadata(contents, "lathe.architecture", where);
  bundle.info.preprocessing =
      Preprocessing::from_json(parse_metadata(contents, "lathe.preprocessing", where));
  bundle.info.task = parse_metadata(contents, "lathe.task", where);
  bundle.info.metrics = parse_metadata(contents, "lathe.metrics", where);
  Generator unused(0);  // weights are overwritten by the saved ones
  try {
    bundle.model = make_layer(bundle.info.architecture, unused);
    bundle.model->load_state_dict(contents.tensors);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
  bundle.model->eval();
  return bundle;
}

}  // namespace lathe
