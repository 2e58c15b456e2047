// The layer registry's internals that load_plugin and the tests reach.
#pragma once

#include <string>
#include <vector>

namespace lathe::detail {

// Registration problems of a plugin being loaded: register_layer_type, called from the plugin's
// static initializers, puts them here instead of throwing while this is set (load_plugin).
extern thread_local std::vector<std::string>* plugin_registration_problems;

// Forgets the type registered last (a test's own, so that other tests in the same process see
// the registry as lathe ships it).
void remove_layer_type(const std::string& name);

}  // namespace lathe::detail
