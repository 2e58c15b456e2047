#pragma once
// Whole-file reading for the data readers: the bytes of a file, gunzipped when the content starts
// with the gzip magic (1f 8b), whatever the file is called. Errors name the path.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace lathe::detail {

// The most bytes a reader accepts from one file, after decompression.
inline constexpr std::uint64_t kMaxFileBytes = std::uint64_t{4} << 30;

struct FileBytes {
  std::vector<unsigned char> bytes;
  bool gunzipped = false;  // the file was gzip data and `bytes` is what it decompressed to
};

// Throws lathe::Error "<path>: cannot open: <reason>", or on read errors, corrupt or truncated
// gzip data, and content larger than `limit` bytes.
FileBytes read_file_bytes(const std::filesystem::path& path, std::uint64_t limit = kMaxFileBytes);

}  // namespace lathe::detail
