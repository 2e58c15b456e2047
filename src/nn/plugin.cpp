// Plugins: shared libraries that register layer types when loaded (their static initializers
// call register_layer_type), for the `lathe` command to read bundles of a program's own modules.
#include <dlfcn.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <string>
#include <vector>

#include "lathe/error.h"
#include "lathe/nn.h"
#include "src/nn/registry_detail.h"

namespace lathe {

void load_plugin(const std::string& path) {
  // RTLD_NOW: a symbol the library needs but this program lacks is an error here, not a crash
  // later. The handle stays open for the life of the process: the types it registered live in it.
  std::vector<std::string> problems;
  detail::plugin_registration_problems = &problems;
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
  detail::plugin_registration_problems = nullptr;
  if (!handle) {
    const char* why = dlerror();
    throw Error(fmt::format("plugin {}: cannot load: {}", path, why ? why : "unknown error"));
  }
  if (!problems.empty()) throw Error(fmt::format("plugin {}: {}", path, fmt::join(problems, "; ")));
}

}  // namespace lathe
