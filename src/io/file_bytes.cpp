#include "src/io/file_bytes.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <system_error>

#include <fmt/format.h>
#include <libdeflate.h>
#define ZLIB_CONST  // next_in points to const bytes
#include <zlib.h>

#include "lathe/error.h"

namespace lathe::detail {
namespace {

constexpr std::size_t kMinBuffer = std::size_t{1} << 20;
// zlib counts in uInt (32 bits); hand it at most this much per call.
constexpr std::size_t kMaxZlibChunk = std::size_t{1} << 30;

std::string errno_text(int code) {
  return std::error_code(code, std::generic_category()).message();
}

[[noreturn]] void throw_too_large(const std::string& name, std::uint64_t limit, bool gzip) {
  throw Error(fmt::format("{}: {} more than {} bytes, the most a data file may hold", name,
                          gzip ? "decompresses to" : "is", limit));
}

// Grows `buffer` to at least `wanted` bytes (at least doubling), but never past limit + 1:
// holding limit + 1 bytes is how the callers notice content over the limit.
void grow(std::vector<unsigned char>& buffer, std::size_t wanted, std::uint64_t limit) {
  const std::uint64_t size = std::max<std::uint64_t>({wanted, buffer.size() * 2, kMinBuffer});
  buffer.resize(static_cast<std::size_t>(std::min(size, limit + 1)));
}

std::vector<unsigned char> read_raw(const std::filesystem::path& path, std::uint64_t limit) {
  const std::string name = path.string();
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) throw Error(fmt::format("{}: cannot open: {}", name, errno_text(errno)));

  std::vector<unsigned char> bytes;
  std::error_code size_error;
  const std::uintmax_t size_hint = std::filesystem::file_size(path, size_error);
  // One more byte than the file has, so that the read that finds the end needs no regrowth.
  if (!size_error)
    grow(bytes, static_cast<std::size_t>(std::min<std::uintmax_t>(size_hint + 1, limit + 1)),
         limit);
  std::size_t used = 0;
  for (;;) {
    if (used == bytes.size()) {
      if (used > limit) throw_too_large(name, limit, false);
      grow(bytes, used + 1, limit);
    }
    used += std::fread(bytes.data() + used, 1, bytes.size() - used, file.get());
    if (std::ferror(file.get()))
      throw Error(fmt::format("{}: cannot read: {}", name, errno_text(errno)));
    if (std::feof(file.get())) break;
  }
  if (used > limit) throw_too_large(name, limit, false);
  bytes.resize(used);
  return bytes;
}

bool has_gzip_magic(const unsigned char* data, std::size_t size) {
  return size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
}

// The size the gzip trailer claims for the data (its last 4 bytes, little-endian: the size
// modulo 2^32). A claim of the file, to be believed only so far.
std::uint64_t claimed_gzip_size(std::span<const unsigned char> input) {
  const unsigned char* tail = input.data() + input.size() - 4;
  return tail[0] | tail[1] << 8 | tail[2] << 16 | static_cast<std::uint64_t>(tail[3]) << 24;
}

// The common case, at twice zlib's speed: one gzip member whose trailer states its size, in a
// buffer of that size. Anything else (several members, trailing bytes, a size the trailer gets
// wrong, corrupt data) returns nothing and is left to the zlib path below, which says what is
// wrong. The trailer is a claim of the file, believed only up to 16 times the compressed size,
// as there.
std::optional<std::vector<unsigned char>> gunzip_whole(std::span<const unsigned char> input,
                                                       std::uint64_t limit) {
  if (input.size() < 18) return std::nullopt;  // a gzip header and trailer
  const std::uint64_t claimed = claimed_gzip_size(input);
  if (claimed > limit || claimed > input.size() * std::uint64_t{16}) return std::nullopt;
  std::unique_ptr<libdeflate_decompressor, void (*)(libdeflate_decompressor*)> decompressor(
      libdeflate_alloc_decompressor(), &libdeflate_free_decompressor);
  if (!decompressor) return std::nullopt;
  std::vector<unsigned char> output(static_cast<std::size_t>(claimed));
  std::size_t consumed = 0, produced = 0;
  const libdeflate_result result =
      libdeflate_gzip_decompress_ex(decompressor.get(), input.data(), input.size(), output.data(),
                                    output.size(), &consumed, &produced);
  if (result != LIBDEFLATE_SUCCESS || consumed != input.size() || produced != output.size())
    return std::nullopt;
  return output;
}

std::vector<unsigned char> gunzip(std::string_view text, const std::string& name,
                                  std::uint64_t limit) {
  const std::span<const unsigned char> input(reinterpret_cast<const unsigned char*>(text.data()),
                                             text.size());
  if (std::optional<std::vector<unsigned char>> whole = gunzip_whole(input, limit))
    return std::move(*whole);
  z_stream stream{};
  if (inflateInit2(&stream, 16 + MAX_WBITS) != Z_OK)  // 16: expect a gzip header
    throw Error(fmt::format("{}: cannot start zlib decompression", name));
  std::unique_ptr<z_stream, int (*)(z_stream*)> end_stream(&stream, &inflateEnd);

  // The trailer's size sizes the first buffer, believed only up to 16 times the compressed size;
  // a file that really expands more grows the buffer by doubling.
  std::vector<unsigned char> output;
  if (input.size() >= 4) {
    const std::uint64_t claimed = claimed_gzip_size(input);
    grow(output,
         static_cast<std::size_t>(
             std::min<std::uint64_t>(claimed + 1, input.size() * std::uint64_t{16})),
         limit);
  }

  std::size_t consumed = 0, produced = 0;
  for (;;) {
    if (produced == output.size()) {
      if (produced > limit) throw_too_large(name, limit, true);
      grow(output, produced + 1, limit);
    }
    if (stream.avail_in == 0)
      stream.avail_in = static_cast<uInt>(std::min(input.size() - consumed, kMaxZlibChunk));
    stream.next_in = input.data() + consumed;
    stream.next_out = output.data() + produced;
    stream.avail_out = static_cast<uInt>(std::min(output.size() - produced, kMaxZlibChunk));
    const unsigned char* const in_before = stream.next_in;
    const unsigned char* const out_before = stream.next_out;
    const int status = inflate(&stream, Z_NO_FLUSH);
    consumed += static_cast<std::size_t>(stream.next_in - in_before);
    produced += static_cast<std::size_t>(stream.next_out - out_before);

    if (status == Z_STREAM_END) {
      if (consumed == input.size()) break;
      // Concatenated gzip members decompress to the concatenation, as with gzip -d.
      if (!has_gzip_magic(input.data() + consumed, input.size() - consumed))
        throw Error(fmt::format("{}: {} bytes of trailing garbage after the gzip data at byte {}",
                                name, input.size() - consumed, consumed));
      inflateReset(&stream);
      stream.avail_in = 0;
      continue;
    }
    if (status == Z_DATA_ERROR || status == Z_NEED_DICT)
      throw Error(fmt::format("{}: corrupt gzip data near compressed byte {}: {}", name, consumed,
                              stream.msg != nullptr ? stream.msg : "invalid data"));
    if (status == Z_MEM_ERROR)
      throw Error(fmt::format("{}: out of memory while decompressing", name));
    // Z_OK or Z_BUF_ERROR: inflate stopped because input or output space ran out.
    if (stream.avail_in == 0 && consumed == input.size() && stream.avail_out > 0)
      throw Error(fmt::format(
          "{}: truncated gzip data: the compressed stream ends at byte {} before its end", name,
          consumed));
  }
  if (produced > limit) throw_too_large(name, limit, true);
  output.resize(produced);
  return output;
}

}  // namespace

FileBytes read_file_bytes(const std::filesystem::path& path, std::uint64_t limit) {
  FileBytes result;
  result.bytes = read_raw(path, limit);
  if (auto inflated = gunzip_if_compressed(as_chars(result.bytes), path.string(), limit)) {
    result.bytes = std::move(*inflated);
    result.gunzipped = true;
  }
  return result;
}

std::vector<unsigned char> read_raw_file(const std::filesystem::path& path, std::uint64_t limit) {
  return read_raw(path, limit);
}

std::optional<std::vector<unsigned char>> gunzip_if_compressed(std::string_view bytes,
                                                               const std::string& name,
                                                               std::uint64_t limit) {
  if (!has_gzip_magic(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()))
    return std::nullopt;
  return gunzip(bytes, name, limit);
}

}  // namespace lathe::detail
