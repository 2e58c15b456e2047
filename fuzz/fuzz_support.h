#pragma once
// Shared by the libFuzzer targets. A target's contract: for any input, the reader returns or
// throws lathe::Error. Any other exception escapes LLVMFuzzerTestOneInput and aborts (libFuzzer
// reports it as a crash), as do sanitizer reports, leaks, timeouts and the invariants below.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace lathe::fuzz {

inline std::string_view bytes_of(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// An invariant of a successful read; a violation is a finding.
inline void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

}  // namespace lathe::fuzz
