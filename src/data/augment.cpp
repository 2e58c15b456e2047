// Random crop, horizontal flip and random erasing of image batches, one seeded generator per
// example.
#include "lathe/augment.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <string>
#include <vector>

#include "lathe/error.h"
#include "lathe/random.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

void require_probability(const char* transform, double p) {
  if (!(p >= 0 && p <= 1))
    throw Error(fmt::format("{}: probability must be in [0, 1], got {}", transform, p));
}

void require_finite(const char* transform, const char* what, double value) {
  if (!std::isfinite(value))
    throw Error(fmt::format("{}: {} must be a finite number, got {}", transform, what, value));
}

// splitmix64's finalizer: a bijection that scatters nearby inputs.
std::uint64_t mix(std::uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// A stream of its own for each (seed, epoch, position); the tag keeps it apart from the
// loader's shuffling stream for the same seed.
Generator example_generator(std::uint64_t seed, std::int64_t epoch, std::int64_t position) {
  std::uint64_t h = mix(seed ^ 0x6175676d656e74ULL);  // "augment"
  h = mix(h + static_cast<std::uint64_t>(epoch));
  return Generator(mix(h + static_cast<std::uint64_t>(position)));
}

struct ImageShape {
  std::int64_t count, channels, height, width;
};

std::string enabled_names(const Augmentation& a) {
  std::vector<std::string> names;
  if (a.random_crop()) names.push_back("random crop");
  if (a.horizontal_flip != 0) names.push_back("horizontal flip");
  if (a.erasing != 0) names.push_back("random erasing");
  return fmt::format("{}", fmt::join(names, ", "));
}

// One example: `in` is channels x height x width, `out` channels x out_height x out_width.
template <class T>
void augment_one(const T* in, T* out, const ImageShape& s, std::int64_t out_height,
                 std::int64_t out_width, const Augmentation& a, Generator& g) {
  const std::int64_t pad = a.crop_padding;
  std::int64_t top = 0, left = 0;  // of the window in the padded image
  if (a.random_crop()) {
    top = static_cast<std::int64_t>(g.below(s.height + 2 * pad - out_height + 1));
    left = static_cast<std::int64_t>(g.below(s.width + 2 * pad - out_width + 1));
  }
  const T fill = static_cast<T>(a.crop_fill);
  for (std::int64_t c = 0; c < s.channels; ++c)
    for (std::int64_t y = 0; y < out_height; ++y) {
      const std::int64_t source_y = y + top - pad;
      T* row = out + (c * out_height + y) * out_width;
      for (std::int64_t x = 0; x < out_width; ++x) {
        const std::int64_t source_x = x + left - pad;
        const bool inside =
            source_y >= 0 && source_y < s.height && source_x >= 0 && source_x < s.width;
        row[x] = inside ? in[(c * s.height + source_y) * s.width + source_x] : fill;
      }
    }

  if (a.horizontal_flip != 0 && g.uniform() < a.horizontal_flip)
    for (std::int64_t r = 0; r < s.channels * out_height; ++r)
      std::reverse(out + r * out_width, out + (r + 1) * out_width);

  if (a.erasing != 0 && g.uniform() < a.erasing) {
    const double area = static_cast<double>(out_height * out_width);
    const double log_min = std::log(a.erasing_ratio_min), log_max = std::log(a.erasing_ratio_max);
    for (int attempt = 0; attempt < 10; ++attempt) {
      const double erase_area =
          area * (a.erasing_scale_min + (a.erasing_scale_max - a.erasing_scale_min) * g.uniform());
      const double aspect = std::exp(log_min + (log_max - log_min) * g.uniform());
      // Python's round(): halves to even, which nearbyint does in the default rounding mode.
      const auto h = static_cast<std::int64_t>(std::nearbyint(std::sqrt(erase_area * aspect)));
      const auto w = static_cast<std::int64_t>(std::nearbyint(std::sqrt(erase_area / aspect)));
      if (!(h < out_height && w < out_width)) continue;
      const auto y0 = static_cast<std::int64_t>(g.below(out_height - h + 1));
      const auto x0 = static_cast<std::int64_t>(g.below(out_width - w + 1));
      const T value = static_cast<T>(a.erasing_value);
      for (std::int64_t c = 0; c < s.channels; ++c)
        for (std::int64_t y = y0; y < y0 + h; ++y) {
          T* row = out + (c * out_height + y) * out_width;
          std::fill(row + x0, row + x0 + w, value);
        }
      break;
    }
  }
}

}  // namespace

void Augmentation::validate() const {
  // The upper bounds only keep the size arithmetic from overflowing.
  constexpr std::int64_t limit = INT32_MAX;
  if (crop_padding < 0 || crop_padding > limit)
    throw Error(
        fmt::format("random crop: padding must be in [0, {}], got {}", limit, crop_padding));
  if (crop_height < 0 || crop_width < 0 || crop_height > limit || crop_width > limit)
    throw Error(fmt::format("random crop: size must be in [0, {}] (0: the image's), got {}x{}",
                            limit, crop_height, crop_width));
  require_finite("random crop", "fill", crop_fill);
  require_probability("horizontal flip", horizontal_flip);
  require_probability("random erasing", erasing);
  if (!(erasing_scale_min >= 0 && erasing_scale_min <= erasing_scale_max && erasing_scale_max <= 1))
    throw Error(fmt::format("random erasing: scale must satisfy 0 <= min <= max <= 1, got ({}, {})",
                            erasing_scale_min, erasing_scale_max));
  if (!(erasing_ratio_min > 0 && erasing_ratio_min <= erasing_ratio_max &&
        std::isfinite(erasing_ratio_max)))
    throw Error(fmt::format("random erasing: ratio must satisfy 0 < min <= max, got ({}, {})",
                            erasing_ratio_min, erasing_ratio_max));
  require_finite("random erasing", "value", erasing_value);
}

Tensor augment_images(const Tensor& images, const Augmentation& augmentation, std::uint64_t seed,
                      std::int64_t epoch, std::int64_t first_position) {
  augmentation.validate();
  if (!augmentation.enabled()) return images;
  const std::string names = enabled_names(augmentation);
  if (!images.defined() || (images.dim() != 3 && images.dim() != 4))
    throw Error(fmt::format("{}: expected images [N,H,W] or [N,C,H,W], got {}", names,
                            images.defined() ? shape_str(images.shape()) : "an undefined tensor"));
  detail::require_cpu(names.c_str(), images);
  const Shape& shape = images.shape();
  const ImageShape s{shape[0], images.dim() == 4 ? shape[1] : 1, shape[shape.size() - 2],
                     shape.back()};
  const std::int64_t out_height = augmentation.crop_height ? augmentation.crop_height : s.height;
  const std::int64_t out_width = augmentation.crop_width ? augmentation.crop_width : s.width;
  const std::int64_t pad = augmentation.crop_padding;
  if (out_height > s.height + 2 * pad || out_width > s.width + 2 * pad)
    throw Error(fmt::format(
        "random crop: crop {}x{} is bigger than the padded image {}x{} ({}x{} with padding {})",
        out_height, out_width, s.height + 2 * pad, s.width + 2 * pad, s.height, s.width, pad));
  Shape out_shape = shape;
  out_shape[out_shape.size() - 2] = out_height;
  out_shape.back() = out_width;
  Tensor out = Tensor::empty(out_shape, images.dtype());
  detail::dispatch_floating(images.dtype(), names.c_str(), [&](auto tag) {
    using T = decltype(tag);
    const T* in = images.data<T>();
    T* o = out.data<T>();
    const std::int64_t in_size = s.channels * s.height * s.width;
    const std::int64_t out_size = s.channels * out_height * out_width;
    for (std::int64_t i = 0; i < s.count; ++i) {
      Generator g = example_generator(seed, epoch, first_position + i);
      augment_one(in + i * in_size, o + i * out_size, s, out_height, out_width, augmentation, g);
    }
  });
  return out;
}

}  // namespace lathe
