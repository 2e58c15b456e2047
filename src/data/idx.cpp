// IDX files (the MNIST format): 00 00 <type> <rank>, rank big-endian uint32 dimensions, then
// the elements in big-endian row-major order.
#include <bit>
#include <cmath>
#include <limits>
#include <optional>
#include <span>
#include <string_view>
#include <type_traits>

#include <fmt/format.h>
#include <zlib.h>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/parallel.h"
#include "src/io/file_bytes.h"

namespace lathe {
namespace {

struct ElementType {
  unsigned char code;
  const char* name;
  std::size_t size;
};

constexpr ElementType kElementTypes[] = {{0x08, "uint8", 1},   {0x09, "int8", 1},
                                         {0x0b, "int16", 2},   {0x0c, "int32", 4},
                                         {0x0d, "float32", 4}, {0x0e, "float64", 8}};

struct IdxFile {
  std::string name;
  std::optional<std::vector<unsigned char>> inflated;  // the decompressed bytes of gzip input
  std::span<const unsigned char> bytes;                // the IDX bytes: the input or `inflated`
  ElementType type;
  Shape shape;
  std::size_t header_bytes = 0;
  std::int64_t count = 0;  // elements
};

std::uint32_t load_u32(const unsigned char* p) {
  return std::uint32_t{p[0]} << 24 | std::uint32_t{p[1]} << 16 | std::uint32_t{p[2]} << 8 | p[3];
}

// Decompresses gzip input and checks the header against the data that is really there; nothing
// is allocated from the header's numbers.
IdxFile open_idx(std::string_view input, const std::string& name) {
  IdxFile idx;
  idx.name = name;
  idx.inflated = detail::gunzip_if_compressed(input, name);
  if (idx.inflated)
    idx.bytes = *idx.inflated;
  else
    idx.bytes = {reinterpret_cast<const unsigned char*>(input.data()), input.size()};
  const auto bytes = idx.bytes;
  const char* const decompressed = idx.inflated ? " (after decompression)" : "";

  if (bytes.size() < 4)
    throw Error(fmt::format("{}: too short for an IDX file: {} bytes, the header alone has 4{}",
                            idx.name, bytes.size(), decompressed));
  if (bytes[0] != 0 || bytes[1] != 0)
    throw Error(
        fmt::format("{}: not an IDX file: starts with bytes {:02x} {:02x}, expected 00 00{}",
                    idx.name, bytes[0], bytes[1], decompressed));
  const ElementType* type = nullptr;
  for (const auto& candidate : kElementTypes)
    if (candidate.code == bytes[2]) type = &candidate;
  if (type == nullptr)
    throw Error(fmt::format(
        "{}: unsupported IDX element type 0x{:02x} at byte 2; expected 0x08 (uint8), 0x09 (int8), "
        "0x0b (int16), 0x0c (int32), 0x0d (float32) or 0x0e (float64){}",
        idx.name, bytes[2], decompressed));
  idx.type = *type;
  const std::size_t rank = bytes[3];
  if (rank == 0)
    throw Error(fmt::format("{}: IDX rank is 0 (byte 3); expected at least one dimension{}",
                            idx.name, decompressed));
  idx.header_bytes = 4 + 4 * rank;
  if (bytes.size() < idx.header_bytes)
    throw Error(fmt::format("{}: truncated header: rank {} needs {} header bytes, file has {}{}",
                            idx.name, rank, idx.header_bytes, bytes.size(), decompressed));

  // Overflow-checked product; a zero dimension makes the data empty whatever the others say.
  std::uint64_t data_bytes = type->size;
  bool overflow = false, has_zero = false;
  for (std::size_t axis = 0; axis < rank; ++axis) {
    const std::uint32_t size = load_u32(&bytes[4 + 4 * axis]);
    idx.shape.push_back(size);
    if (size == 0)
      has_zero = true;
    else if (data_bytes > std::numeric_limits<std::uint64_t>::max() / size)
      overflow = true;
    else
      data_bytes *= size;
  }
  if (has_zero) data_bytes = 0;
  const std::uint64_t available = bytes.size() - idx.header_bytes;
  const std::string claim = fmt::format("{} {}", shape_str(idx.shape), type->name);
  if (overflow && !has_zero)
    throw Error(
        fmt::format("{}: header dimensions {} need more than 2^64 data bytes, file has {}{}",
                    idx.name, claim, available, decompressed));
  if (data_bytes > available)
    throw Error(fmt::format("{}: truncated: header says {} data bytes ({}), file has {}{}",
                            idx.name, data_bytes, claim, available, decompressed));
  if (data_bytes < available)
    throw Error(fmt::format("{}: trailing bytes: header says {} data bytes ({}), file has {}{}",
                            idx.name, data_bytes, claim, available, decompressed));
  idx.count = static_cast<std::int64_t>(data_bytes / type->size);
  return idx;
}

template <class Source>
Source load(const unsigned char* p) {
  if constexpr (sizeof(Source) == 1) {
    return static_cast<Source>(p[0]);
  } else if constexpr (sizeof(Source) == 2) {
    return static_cast<Source>(static_cast<std::uint16_t>(p[0] << 8 | p[1]));
  } else if constexpr (sizeof(Source) == 4) {
    return std::bit_cast<Source>(load_u32(p));
  } else {
    return std::bit_cast<Source>(std::uint64_t{load_u32(p)} << 32 | load_u32(p + 4));
  }
}

template <class Source, class Target>
Tensor convert(const IdxFile& idx) {
  Tensor result;
  try {
    result = Tensor::empty(idx.shape, dtype_of<Target>());
  } catch (const Error& e) {  // e.g. [0,4294967295,4294967295]: no data, but too many elements
    throw Error(fmt::format("{}: {}", idx.name, e.what()));
  }
  Target* out = result.data<Target>();
  const unsigned char* in = idx.bytes.data() + idx.header_bytes;
  if constexpr (sizeof(Source) == 1) {
    // Bytes (images): every value converts, so the pool's threads share the pages to fill.
    parallel_for(idx.count, detail::kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) out[i] = static_cast<Target>(load<Source>(in + i));
    });
    return result;
  }
  for (std::int64_t i = 0; i < idx.count; ++i, in += sizeof(Source)) {
    const Source value = load<Source>(in);
    if constexpr (std::is_same_v<Source, double> && std::is_same_v<Target, float>) {
      // Converting a finite double beyond float's range is undefined behaviour.
      if (std::isfinite(value) && std::abs(value) > std::numeric_limits<float>::max())
        throw Error(fmt::format("{}: element {} (byte {}) is {}, outside the float32 range",
                                idx.name, i, idx.header_bytes + i * 8, value));
    }
    out[i] = static_cast<Target>(value);
  }
  return result;
}

}  // namespace

std::optional<Shape> peek_idx_shape(const std::filesystem::path& path) {
  // zlib reads gzip and raw files alike, and only as far as asked: the header, not the data.
  gzFile file = gzopen(path.c_str(), "rb");
  if (!file) return std::nullopt;
  unsigned char header[4 + 4 * 255];
  std::optional<Shape> shape;
  if (gzread(file, header, 4) == 4 && header[0] == 0 && header[1] == 0 && header[3] > 0) {
    const int rank = header[3];
    if (gzread(file, header + 4, static_cast<unsigned>(4 * rank)) == 4 * rank) {
      shape.emplace();
      for (int axis = 0; axis < rank; ++axis) shape->push_back(load_u32(&header[4 + 4 * axis]));
    }
  }
  gzclose(file);
  return shape;
}

Tensor read_idx(const std::filesystem::path& path) {
  return parse_idx(detail::as_chars(detail::read_raw_file(path)), path.string());
}

std::optional<ByteImages> read_idx_bytes(const std::filesystem::path& path) {
  std::vector<unsigned char> raw = detail::read_raw_file(path);
  IdxFile idx = open_idx(detail::as_chars(raw), path.string());
  if (idx.type.code != 0x08) return std::nullopt;
  // The IDX bytes stay where they are, header and all: the decompressed buffer or the file's.
  std::vector<unsigned char> storage = idx.inflated ? std::move(*idx.inflated) : std::move(raw);
  return ByteImages{std::make_shared<const std::vector<unsigned char>>(std::move(storage)),
                    idx.header_bytes, idx.shape};
}

Tensor read_idx_labels(const std::filesystem::path& path) {
  return parse_idx_labels(detail::as_chars(detail::read_raw_file(path)), path.string());
}

Tensor parse_idx(std::string_view bytes, const std::string& where) {
  const IdxFile idx = open_idx(bytes, where);
  switch (idx.type.code) {
    case 0x08:
      return convert<std::uint8_t, float>(idx);
    case 0x09:
      return convert<std::int8_t, float>(idx);
    case 0x0b:
      return convert<std::int16_t, std::int64_t>(idx);
    case 0x0c:
      return convert<std::int32_t, std::int64_t>(idx);
    case 0x0d:
      return convert<float, float>(idx);
    default:
      return convert<double, float>(idx);
  }
}

Tensor parse_idx_labels(std::string_view bytes, const std::string& where) {
  const IdxFile idx = open_idx(bytes, where);
  switch (idx.type.code) {
    case 0x08:
      return convert<std::uint8_t, std::int64_t>(idx);
    case 0x09:
      return convert<std::int8_t, std::int64_t>(idx);
    case 0x0b:
      return convert<std::int16_t, std::int64_t>(idx);
    case 0x0c:
      return convert<std::int32_t, std::int64_t>(idx);
    default:
      throw Error(fmt::format("{}: labels must be integers, but the IDX element type is {}",
                              idx.name, idx.type.name));
  }
}

}  // namespace lathe
