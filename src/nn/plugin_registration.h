// Registration problems of a plugin being loaded: register_layer_type, called from the plugin's
// static initializers, puts them here instead of throwing while this is set (load_plugin).
#pragma once

#include <string>
#include <vector>

namespace lathe::detail {

extern thread_local std::vector<std::string>* plugin_registration_problems;

}  // namespace lathe::detail
