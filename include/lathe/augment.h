#pragma once
// Random augmentation of training image batches with torchvision's semantics: random crop with
// padding, horizontal flip, random erasing. Every draw for an example comes from a generator
// seeded by (seed, epoch, the example's position in the epoch) alone, so a batch is augmented the
// same with or without prefetching, in any shard, and when training resumes.
#include <cstdint>

#include "lathe/tensor.h"

namespace lathe {

struct Augmentation {
  // RandomCrop(size, padding, fill): pad every side by `crop_padding` pixels of `crop_fill`, then
  // take a crop_height x crop_width window (0: the image's own size) at a random offset. The
  // offset is drawn per example, as torchvision's RandomCrop does per image (a per-batch offset,
  // as in ../shared/reference/torch_cnn.py, shifts a whole batch the same way).
  std::int64_t crop_padding = 0;
  std::int64_t crop_height = 0, crop_width = 0;
  double crop_fill = 0;
  // RandomHorizontalFlip(p): mirror left-right when a uniform draw is below p.
  double horizontal_flip = 0;
  // RandomErasing(p, scale, ratio, value): with probability p, up to 10 attempts to draw a
  // rectangle of area scale * H * W and aspect ratio h/w (log-uniform in ratio) that fits the
  // image; the first that fits is set to `erasing_value` in every channel. None fitting: no change.
  double erasing = 0;
  double erasing_scale_min = 0.02, erasing_scale_max = 0.33;
  double erasing_ratio_min = 0.3, erasing_ratio_max = 3.3;
  double erasing_value = 0;

  bool random_crop() const { return crop_padding != 0 || crop_height != 0 || crop_width != 0; }
  bool enabled() const { return random_crop() || horizontal_flip != 0 || erasing != 0; }
  // Throws lathe::Error naming the transform and the value for a negative padding or crop size,
  // a probability outside [0, 1] or an erasing scale/ratio range that is empty.
  void validate() const;
};

// `images` (float [N,H,W] or [N,C,H,W]) with crop, flip and erasing applied in that order, as a
// new tensor [N,(C,)crop_height,crop_width]. Example i draws from a generator seeded by
// (seed, epoch, first_position + i) only. Channels of one image share the draws.
Tensor augment_images(const Tensor& images, const Augmentation& augmentation, std::uint64_t seed,
                      std::int64_t epoch, std::int64_t first_position);

}  // namespace lathe
