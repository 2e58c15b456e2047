#pragma once
// Whole-file reading: the bytes of a file, gunzipped when the content starts with the gzip magic
// (1f 8b), whatever the file is called. Errors name the path. The data readers, io (configs,
// safetensors, bundles) and deploy (input files, images) all read through it; it includes
// nothing of lathe but errors, so any floor may use it.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
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

// The bytes of a file as they are, without decompression; errors as read_file_bytes.
std::vector<unsigned char> read_raw_file(const std::filesystem::path& path,
                                         std::uint64_t limit = kMaxFileBytes);

// What `bytes` decompress to when they start with the gzip magic, otherwise nothing (use `bytes`
// as they are). `name` names the source in errors (corrupt, truncated, more than `limit`).
std::optional<std::vector<unsigned char>> gunzip_if_compressed(std::string_view bytes,
                                                               const std::string& name,
                                                               std::uint64_t limit = kMaxFileBytes);

inline std::string_view as_chars(const std::vector<unsigned char>& bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

}  // namespace lathe::detail
