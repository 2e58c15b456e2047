// Images for prediction: decoding with stb_image and resampling with stb_image_resize, both from
// Debian's libstb (the implementations live in its library, so no *_IMPLEMENTATION here).
#include <stb/stb_image.h>
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstring>
#include <initializer_list>
#include <memory>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/predict_io.h"
#include "src/io/file_bytes.h"

namespace lathe {
namespace {

// Image files are read whole; none a model could use is anywhere near this.
constexpr std::uint64_t kMaxImageFileBytes = std::uint64_t{256} << 20;
// The largest side image_layout accepts for a model input.
constexpr std::int64_t kMaxSide = 8192;

std::string failure_reason() {
  const char* reason = stbi_failure_reason();
  return reason != nullptr ? reason : "unknown reason";
}

std::string shape_problem(const Shape& shape) {
  return fmt::format(
      "the model's input shape {} is not an image: images feed models whose input is [H,W], "
      "[N] with N a square (784 = 28x28), [C,H,W] or [H,W,C] with C = 1 or 3",
      shape_str(shape));
}

// The formats read_image takes, recognized by their first bytes. Formats without a signature
// (TGA) or rarely used ones (PSD, HDR, PIC) are refused, so that not just any file is an image.
const char* format_of(const std::vector<unsigned char>& b) {
  const auto starts = [&b](std::initializer_list<unsigned char> prefix) {
    return b.size() >= prefix.size() && std::equal(prefix.begin(), prefix.end(), b.begin());
  };
  if (starts({0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'})) return "PNG";
  if (starts({0xff, 0xd8, 0xff})) return "JPEG";
  if (starts({'B', 'M'})) return "BMP";
  if (starts({'G', 'I', 'F', '8'})) return "GIF";
  if (starts({'P', '5'}) || starts({'P', '6'})) return "PNM";
  return nullptr;
}

// stb_image (this version) leaves the pixels of a truncated binary PGM/PPM uninitialized rather
// than failing, so the data size its header implies is checked here first.
void check_pnm_size(const std::vector<unsigned char>& b, const std::string& name, int width,
                    int height, int channels) {
  std::size_t pos = 2;
  std::uint64_t numbers[3] = {};  // width, height, maximum value
  for (std::uint64_t& number : numbers) {
    for (;;) {  // whitespace and # comments
      while (pos < b.size() && std::isspace(b[pos])) ++pos;
      if (pos < b.size() && b[pos] == '#') {
        while (pos < b.size() && b[pos] != '\n' && b[pos] != '\r') ++pos;
        continue;
      }
      break;
    }
    while (pos < b.size() && std::isdigit(b[pos]) && number < (std::uint64_t{1} << 32))
      number = number * 10 + (b[pos++] - '0');
  }
  ++pos;  // the one whitespace character before the data
  const std::uint64_t sample_bytes = numbers[2] > 255 ? 2 : 1;
  const std::uint64_t needed = static_cast<std::uint64_t>(width) * height * channels * sample_bytes;
  const std::uint64_t present = pos > b.size() ? 0 : b.size() - pos;
  if (present < needed)
    throw Error(
        fmt::format("{}: truncated image: a {}x{} PNM image needs {} bytes of pixel data, "
                    "the file has {}",
                    name, width, height, needed, present));
}

}  // namespace

Image decode_image(const std::vector<unsigned char>& bytes, const std::string& name, int channels) {
  if (channels != 1 && channels != 3)
    throw Error(fmt::format("{}: images decode to 1 or 3 channels, not {}", name, channels));
  if (bytes.empty()) throw Error(fmt::format("{}: empty file; expected an image", name));
  if (bytes.size() > static_cast<std::size_t>(INT_MAX))
    throw Error(fmt::format("{}: {} bytes is too large for an image", name, bytes.size()));
  const char* format = format_of(bytes);
  if (format == nullptr)
    throw Error(fmt::format(
        "{}: not a readable image: the content is not PNG, JPEG, BMP, GIF, PGM or PPM", name));
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, file_channels = 0;
  // The header first, so that a huge claimed size is refused before any pixel is allocated.
  if (stbi_info_from_memory(bytes.data(), length, &width, &height, &file_channels) == 0)
    throw Error(fmt::format("{}: not a readable {} image ({})", name, format, failure_reason()));
  if (width <= 0 || height <= 0 || static_cast<std::int64_t>(width) * height > kMaxImagePixels)
    throw Error(fmt::format("{}: image of {}x{} pixels; at most {} pixels are accepted", name,
                            width, height, kMaxImagePixels));
  if (std::strcmp(format, "PNM") == 0) check_pnm_size(bytes, name, width, height, file_channels);
  std::unique_ptr<unsigned char, void (*)(void*)> pixels(
      stbi_load_from_memory(bytes.data(), length, &width, &height, &file_channels, channels),
      &stbi_image_free);
  if (!pixels)
    throw Error(fmt::format("{}: corrupt {} image data ({})", name, format, failure_reason()));
  Image image{width, height, channels, {}};
  const std::size_t count = static_cast<std::size_t>(width) * height * channels;
  image.pixels.assign(pixels.get(), pixels.get() + count);
  return image;
}

Image read_image(const std::filesystem::path& path, int channels) {
  const detail::FileBytes file = detail::read_file_bytes(path, kMaxImageFileBytes);
  return decode_image(file.bytes, path.string(), channels);
}

Image resize_image(const Image& image, int width, int height) {
  if (width <= 0 || height <= 0)
    throw Error(fmt::format("resize_image: target size {}x{} is not positive", width, height));
  if (image.width == width && image.height == height) return image;
  Image out{width, height, image.channels, {}};
  out.pixels.resize(static_cast<std::size_t>(width) * height * image.channels);
  const auto filter = [](int from, int to) {
    return to < from ? STBIR_FILTER_BOX : STBIR_FILTER_CATMULLROM;
  };
  const int ok =
      stbir_resize(image.pixels.data(), image.width, image.height, 0, out.pixels.data(), width,
                   height, 0, STBIR_TYPE_UINT8, image.channels, STBIR_ALPHA_CHANNEL_NONE, 0,
                   STBIR_EDGE_CLAMP, STBIR_EDGE_CLAMP, filter(image.width, width),
                   filter(image.height, height), STBIR_COLORSPACE_LINEAR, nullptr);
  if (ok == 0)
    throw Error(fmt::format("cannot resize a {}x{} image to {}x{}", image.width, image.height,
                            width, height));
  return out;
}

ImageLayout image_layout(const Shape& shape) {
  ImageLayout layout;
  const auto fits = [](std::int64_t side) { return side > 0 && side <= kMaxSide; };
  if (shape.size() == 1) {
    const auto side = static_cast<std::int64_t>(std::llround(std::sqrt(double(shape[0]))));
    if (!fits(side) || side * side != shape[0]) throw Error(shape_problem(shape));
    layout.height = layout.width = static_cast<int>(side);
  } else if (shape.size() == 2) {
    if (!fits(shape[0]) || !fits(shape[1])) throw Error(shape_problem(shape));
    layout.height = static_cast<int>(shape[0]);
    layout.width = static_cast<int>(shape[1]);
  } else if (shape.size() == 3) {
    const bool first = shape[0] == 1 || shape[0] == 3;
    const bool last = shape[2] == 1 || shape[2] == 3;
    if (!first && !last) throw Error(shape_problem(shape));
    layout.channels_first = first;
    const std::int64_t h = first ? shape[1] : shape[0], w = first ? shape[2] : shape[1];
    if (!fits(h) || !fits(w)) throw Error(shape_problem(shape));
    layout.channels = static_cast<int>(first ? shape[0] : shape[2]);
    layout.height = static_cast<int>(h);
    layout.width = static_cast<int>(w);
  } else {
    throw Error(shape_problem(shape));
  }
  return layout;
}

Tensor image_to_input(const std::filesystem::path& path, const Shape& shape) {
  ImageLayout layout;
  try {
    layout = image_layout(shape);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", path.string(), e.what()));
  }
  const Image image = resize_image(read_image(path, layout.channels), layout.width, layout.height);
  const std::int64_t plane = std::int64_t{layout.width} * layout.height;
  Tensor input = Tensor::empty({plane * layout.channels});
  float* out = input.data<float>();
  for (std::int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < layout.channels; ++c) {
      const float value = image.pixels[p * layout.channels + c];
      out[layout.channels_first ? c * plane + p : p * layout.channels + c] = value;
    }
  return input;
}

}  // namespace lathe
