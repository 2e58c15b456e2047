#pragma once
#include <string>

namespace lathe {
const char* version();
std::string build_info();  // version, BLAS library and configuration, thread count
}  // namespace lathe
