#pragma once
// Every error lathe reports on bad input is a lathe::Error: a message that says what was wrong,
// where, and what is allowed. Nothing in the library aborts on user input.
#include <stdexcept>
#include <string>

namespace lathe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

}  // namespace lathe
