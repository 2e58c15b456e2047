// safetensors: 8-byte little-endian header length, a JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
// tensor bytes. See https://github.com/huggingface/safetensors for the format.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "lathe/error.h"
#include "lathe/io.h"

namespace lathe {
namespace {

constexpr std::uint64_t kMaxHeaderBytes = 100 * 1024 * 1024;

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::Float32:
      return "F32";
    case DType::Float64:
      return "F64";
    case DType::Int64:
      return "I64";
  }
  return "?";
}

std::string read_whole_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) throw Error(fmt::format("{}: read error", path.string()));
  return std::move(buffer).str();
}

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin, end;
};

Entry parse_entry(const std::string& where, const std::string& name, const nlohmann::json& value) {
  const auto fail = [&](const std::string& why) {
    return Error(fmt::format("{}: tensor '{}': {}", where, name, why));
  };
  if (!value.is_object()) throw fail("entry is not an object");
  for (const auto& [key, unused] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets")
      throw fail(fmt::format("unknown field '{}'", key));
  if (!value.contains("dtype") || !value["dtype"].is_string()) throw fail("missing string 'dtype'");
  Entry entry;
  entry.name = name;
  const std::string dtype = value["dtype"].get<std::string>();
  if (dtype == "F32") {
    entry.dtype = DType::Float32;
  } else if (dtype == "F64") {
    entry.dtype = DType::Float64;
  } else if (dtype == "I64") {
    entry.dtype = DType::Int64;
  } else {
    throw fail(fmt::format("dtype '{}' is not supported (lathe reads F32, F64, I64)", dtype));
  }
  if (!value.contains("shape") || !value["shape"].is_array()) throw fail("missing array 'shape'");
  std::uint64_t numel = 1;
  for (const auto& d : value["shape"]) {
    if (!d.is_number_unsigned())
      throw fail(fmt::format("shape {} has a non-integer or negative size", value["shape"].dump()));
    const std::uint64_t size = d.get<std::uint64_t>();
    if (size != 0 && numel > std::numeric_limits<std::uint64_t>::max() / 8 / size)
      throw fail(fmt::format("shape {} overflows", value["shape"].dump()));
    numel *= size;
    entry.shape.push_back(static_cast<std::int64_t>(size));
  }
  if (entry.shape.size() > 16) throw fail("more than 16 axes");
  const auto& offsets = value.value("data_offsets", nlohmann::json());
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
      !offsets[1].is_number_unsigned())
    throw fail("'data_offsets' must be two non-negative integers");
  entry.begin = offsets[0].get<std::uint64_t>();
  entry.end = offsets[1].get<std::uint64_t>();
  if (entry.end < entry.begin)
    throw fail(fmt::format("data_offsets [{}, {}] are reversed", entry.begin, entry.end));
  const std::uint64_t bytes = numel * dtype_size(entry.dtype);
  if (entry.end - entry.begin != bytes)
    throw fail(fmt::format("data_offsets [{}, {}] span {} bytes but {} {} needs {}", entry.begin,
                           entry.end, entry.end - entry.begin, dtype, value["shape"].dump(),
                           bytes));
  return entry;
}

}  // namespace

void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  std::uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == "__metadata__") throw Error("safetensors: '__metadata__' is not a tensor name");
    const std::uint64_t bytes =
        static_cast<std::uint64_t>(tensor.numel()) * dtype_size(tensor.dtype());
    header[name] = {{"dtype", safetensors_dtype(tensor.dtype())},
                    {"shape", tensor.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data 8-byte aligned
  std::string file(8, '\0');
  const std::uint64_t length = text.size();
  for (int i = 0; i < 8; ++i) file[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  file += text;
  file.reserve(file.size() + offset);
  for (const auto& [name, tensor] : tensors)
    file.append(static_cast<const char*>(tensor.impl()->storage->data()),
                static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype()));
  write_file_atomically(path, file);
}

SafetensorsContents load_safetensors(const std::filesystem::path& path) {
  const std::string where = path.string();
  const std::string file = read_whole_file(path);
  if (file.size() < 8)
    throw Error(
        fmt::format("{}: {} bytes is too short for a safetensors file", where, file.size()));
  std::uint64_t header_length = 0;
  for (int i = 0; i < 8; ++i)
    header_length |= static_cast<std::uint64_t>(static_cast<unsigned char>(file[i])) << (8 * i);
  if (header_length > kMaxHeaderBytes || header_length > file.size() - 8)
    throw Error(
        fmt::format("{}: header length {} exceeds {} (file is {} bytes)", where, header_length,
                    std::min<std::uint64_t>(kMaxHeaderBytes, file.size() - 8), file.size()));
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(file.begin() + 8,
                                   file.begin() + 8 + static_cast<std::ptrdiff_t>(header_length));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: header is not valid JSON: {}", where, e.what()));
  }
  if (!header.is_object()) throw Error(fmt::format("{}: header is not a JSON object", where));

  SafetensorsContents contents;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) throw Error(fmt::format("{}: __metadata__ is not an object", where));
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string())
          throw Error(fmt::format("{}: __metadata__ '{}' is not a string", where, key));
        contents.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(where, name, value));
  }
  // The tensors must tile the data section exactly: sorted, no gaps, no overlaps, no excess.
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  const std::uint64_t data_size = file.size() - 8 - header_length;
  std::uint64_t expected = 0;
  for (const Entry& e : entries) {
    if (e.begin != expected)
      throw Error(
          fmt::format("{}: tensor '{}': data_offsets start at {} but the previous tensor "
                      "ends at {} (gap or overlap)",
                      where, e.name, e.begin, expected));
    if (e.end > data_size)
      throw Error(fmt::format("{}: tensor '{}': data_offsets end at {} beyond the {} data bytes",
                              where, e.name, e.end, data_size));
    expected = e.end;
  }
  if (expected != data_size)
    throw Error(
        fmt::format("{}: {} data bytes but the tensors cover {}", where, data_size, expected));

  const char* data = file.data() + 8 + header_length;
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    std::memcpy(t.impl()->storage->data(), data + e.begin, e.end - e.begin);
    contents.tensors[e.name] = t;
  }
  return contents;
}

}  // namespace lathe
