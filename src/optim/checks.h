#pragma once
// Internal: the argument checks shared by the optimizers, schedules and gradient clipping.
#include <fmt/format.h>

#include <cmath>
#include <string_view>

#include "lathe/error.h"

namespace lathe::detail {

// Throws "<who>: <what> must be <rule>, got <value>" unless `ok`; non-finite values never pass.
inline void require_value(bool ok, std::string_view who, std::string_view what,
                          std::string_view rule, double value) {
  if (!std::isfinite(value))
    throw Error(fmt::format("{}: {} must be finite, got {}", who, what, value));
  if (!ok) throw Error(fmt::format("{}: {} must be {}, got {}", who, what, rule, value));
}

}  // namespace lathe::detail
