// Plugins: shared libraries that register layer types when loaded (their static initializers
// call register_layer_type), for the `lathe` command to read bundles of a program's own modules.
#include <dlfcn.h>
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/nn.h"

namespace lathe {

void load_plugin(const std::string& path) {
  // RTLD_NOW: a symbol the library needs but this program lacks is an error here, not a crash
  // later. The handle stays open for the life of the process: the types it registered live in it.
  if (!dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
    const char* why = dlerror();
    throw Error(fmt::format("plugin {}: cannot load: {}", path, why ? why : "unknown error"));
  }
}

}  // namespace lathe
