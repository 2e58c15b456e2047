// Layers for images: Conv2d, Pool2d, GlobalAvgPool, BatchNorm, Reshape.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/ops.h"

namespace lathe {

Conv2d::Conv2d(std::int64_t in_channels, std::int64_t out_channels, Options options,
               Generator& generator)
    : in_channels_(in_channels), out_channels_(out_channels), options_(options) {
  if (in_channels <= 0 || out_channels <= 0)
    throw Error(fmt::format("conv2d: channels must be positive, got in={} out={}", in_channels,
                            out_channels));
  if (options.kernel_size < 1 || options.stride < 1 || options.dilation < 1 || options.padding < 0)
    throw Error(
        fmt::format("conv2d: need kernel_size, stride, dilation >= 1 and padding >= 0, got "
                    "kernel_size={} stride={} dilation={} padding={}",
                    options.kernel_size, options.stride, options.dilation, options.padding));
  if (options.groups < 1 || in_channels % options.groups != 0 || out_channels % options.groups != 0)
    throw Error(fmt::format("conv2d: groups = {} must divide in = {} and out = {}", options.groups,
                            in_channels, out_channels));
  const std::int64_t k = options.kernel_size;
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels / options.groups * k * k));
  Tensor weight = Tensor::empty({out_channels, in_channels / options.groups, k, k});
  uniform_(weight, -bound, bound, generator);
  weight_ = register_parameter("weight", weight);
  if (options.bias) {
    Tensor b = Tensor::empty({out_channels});
    uniform_(b, -bound, bound, generator);
    bias_ = register_parameter("bias", b);
  }
}

Tensor Conv2d::forward(const Tensor& input) {
  if (input.dim() != 4 || input.size(1) != in_channels_)
    throw Error(fmt::format("conv2d({}->{}): input of shape {} is not [N, {}, H, W]", in_channels_,
                            out_channels_, shape_str(input.shape()), in_channels_));
  const auto pair = [](std::int64_t v) { return std::array<std::int64_t, 2>{v, v}; };
  return conv2d(
      input, weight_, bias_,
      {pair(options_.stride), pair(options_.padding), pair(options_.dilation), options_.groups});
}

nlohmann::json Conv2d::spec() const {
  return {{"type", type()},
          {"in", in_channels_},
          {"out", out_channels_},
          {"kernel_size", options_.kernel_size},
          {"stride", options_.stride},
          {"padding", options_.padding},
          {"dilation", options_.dilation},
          {"groups", options_.groups},
          {"bias", options_.bias}};
}

Pool2d::Pool2d(Kind kind, std::int64_t kernel_size, std::int64_t stride, std::int64_t padding)
    : kind_(kind), kernel_size_(kernel_size), stride_(stride), padding_(padding) {
  if (kernel_size < 1 || stride < 1 || padding < 0 || 2 * padding > kernel_size)
    throw Error(
        fmt::format("{}: need kernel_size, stride >= 1 and 0 <= padding <= kernel_size / "
                    "2, got kernel_size={} stride={} padding={}",
                    type(), kernel_size, stride, padding));
}

Tensor Pool2d::forward(const Tensor& input) {
  const Pool2dOptions options{
      {kernel_size_, kernel_size_}, {stride_, stride_}, {padding_, padding_}};
  return kind_ == Kind::Max ? max_pool2d(input, options) : avg_pool2d(input, options);
}

nlohmann::json Pool2d::spec() const {
  return {
      {"type", type()}, {"kernel_size", kernel_size_}, {"stride", stride_}, {"padding", padding_}};
}

Tensor GlobalAvgPool::forward(const Tensor& input) {
  if (input.dim() != 4)
    throw Error(fmt::format("global_avg_pool: input of shape {} is not [N, C, H, W]",
                            shape_str(input.shape())));
  return mean(input, {2, 3});
}

BatchNorm::BatchNorm(int spatial_dims, std::int64_t features, double eps, double momentum)
    : spatial_dims_(spatial_dims), features_(features), eps_(eps), momentum_(momentum) {
  if (features <= 0)
    throw Error(fmt::format("{}: features must be positive, got {}", type(), features));
  if (!(eps > 0) || !(momentum >= 0 && momentum <= 1))
    throw Error(fmt::format("{}: need eps > 0 and momentum in [0, 1], got eps={} momentum={}",
                            type(), eps, momentum));
  weight_ = register_parameter("weight", Tensor::ones({features}));
  bias_ = register_parameter("bias", Tensor::zeros({features}));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({features}));
  running_var_ = register_buffer("running_var", Tensor::ones({features}));
}

void BatchNorm::check_input(const Tensor& input) const {
  const bool shape_ok =
      spatial_dims_ == 2 ? input.dim() == 4 : input.dim() == 2 || input.dim() == 3;
  if (!shape_ok || input.size(1) != features_)
    throw Error(fmt::format(
        "{}({}): input of shape {} is not {}", type(), features_, shape_str(input.shape()),
        spatial_dims_ == 2 ? fmt::format("[N, {}, H, W]", features_)
                           : fmt::format("[N, {}] or [N, {}, L]", features_, features_)));
}

Tensor BatchNorm::forward(const Tensor& input) {
  check_input(input);
  return batch_norm(input, running_mean_, running_var_, weight_, bias_, is_training(), momentum_,
                    eps_);
}

Tensor BatchNorm::forward_then_relu(const Tensor& input) {
  check_input(input);
  return batch_norm_relu(input, running_mean_, running_var_, weight_, bias_, is_training(),
                         momentum_, eps_);
}

Tensor BatchNorm::forward_relu_max_pool(const Tensor& input) {
  check_input(input);
  if (spatial_dims_ != 2)
    throw Error(fmt::format("{}: a fused 2x2 max pool needs batch_norm2d", type()));
  return batch_norm_relu_max_pool2d(input, running_mean_, running_var_, weight_, bias_,
                                    is_training(), momentum_, eps_);
}

nlohmann::json BatchNorm::spec() const {
  return {{"type", type()}, {"features", features_}, {"eps", eps_}, {"momentum", momentum_}};
}

Reshape::Reshape(Shape shape) : shape_(std::move(shape)) {
  if (shape_.empty()) throw Error("reshape: the shape per example is empty");
  std::int64_t numel = 1;
  for (std::int64_t d : shape_) {
    if (d <= 0)
      throw Error(fmt::format("reshape: dimensions must be positive, got {}", shape_str(shape_)));
    if (numel > std::numeric_limits<std::int64_t>::max() / 8 / d)  // as Tensor's own limit
      throw Error(fmt::format("reshape: shape {} is too large", shape_str(shape_)));
    numel *= d;
  }
}

Tensor Reshape::forward(const Tensor& input) {
  if (input.dim() < 1 || input.numel() != input.size(0) * shape_numel(shape_))
    throw Error(fmt::format("reshape: input of shape {} does not hold examples of shape {}",
                            shape_str(input.shape()), shape_str(shape_)));
  Shape shape{input.size(0)};
  shape.insert(shape.end(), shape_.begin(), shape_.end());
  return lathe::reshape(input, shape);
}

nlohmann::json Reshape::spec() const {
  return {{"type", type()}, {"shape", shape_}};
}

}  // namespace lathe
