// Preprocessing fitted on training inputs and replayed at prediction time.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/parallel.h"

namespace lathe {

Preprocessing Preprocessing::normalize(double scale, double mean, double std) {
  if (!(std > 0) || !std::isfinite(scale) || !std::isfinite(mean))
    throw Error(
        fmt::format("normalize: need finite scale and mean and std > 0, got scale={} "
                    "mean={} std={}",
                    scale, mean, std));
  Preprocessing p;
  p.scale_ = scale;
  p.mean_ = {mean};
  p.std_ = {std};
  return p;
}

Preprocessing Preprocessing::standardize(const Tensor& training_inputs, double scale) {
  if (training_inputs.dim() < 2 || training_inputs.size(0) == 0)
    throw Error(fmt::format("standardize: needs inputs [N, features...] with N > 0, got {}",
                            shape_str(training_inputs.shape())));
  const std::int64_t n = training_inputs.size(0), features = training_inputs.numel() / n;
  const Tensor x = training_inputs.to(DType::Float64);
  const double* data = x.data<double>();
  Preprocessing p;
  p.scale_ = scale;
  p.mean_.assign(features, 0.0);
  p.std_.assign(features, 0.0);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < features; ++f) p.mean_[f] += data[i * features + f] * scale;
  for (auto& m : p.mean_) m /= static_cast<double>(n);
  for (std::int64_t i = 0; i < n; ++i)
    for (std::int64_t f = 0; f < features; ++f) {
      const double d = data[i * features + f] * scale - p.mean_[f];
      p.std_[f] += d * d;
    }
  for (auto& s : p.std_) {
    s = std::sqrt(s / static_cast<double>(n));  // population std, as sklearn's StandardScaler
    if (s == 0) s = 1;
  }
  return p;
}

Tensor Preprocessing::apply(const Tensor& inputs) const {
  // A float32 input that is not ours to change is read once into the output, not copied first
  // (at batch 1000 on the Fashion MLP the copy was a sixth of a Predictor call).
  if (inputs.dtype() == DType::Float32) return normalized(inputs, Tensor::empty(inputs.shape()));
  return apply(inputs.to(DType::Float32));
}

Tensor Preprocessing::apply(Tensor&& inputs) const {
  const bool owned = inputs.dtype() == DType::Float32 && inputs.handle_count() == 1 &&
                     inputs.impl()->storage.use_count() == 1;
  if (owned) {
    Tensor same = std::move(inputs);
    return normalized(same, same);
  }
  return apply(static_cast<const Tensor&>(inputs));
}

// out = (inputs * scale - mean) / std per feature; out may be inputs itself.
Tensor Preprocessing::normalized(const Tensor& inputs, Tensor out) const {
  if (inputs.dim() < 1)
    throw Error(fmt::format("preprocessing: input of shape {} has no batch axis",
                            shape_str(inputs.shape())));
  const std::int64_t n = inputs.size(0);
  const std::int64_t features = n == 0 ? 0 : inputs.numel() / n;
  if (n > 0 && mean_.size() != 1 && static_cast<std::int64_t>(mean_.size()) != features)
    throw Error(fmt::format("preprocessing: fitted on {} features, input {} has {}", mean_.size(),
                            shape_str(inputs.shape()), features));
  const float* x = inputs.data<float>();
  float* y = out.data<float>();
  // (v scale - mean) / std as v a + b, still in double: a division per value was a tenth of a
  // batch-1000 prediction of the seed MLP. Rounded to float the two agree (the exact value would
  // have to lie within double rounding of a float's rounding boundary).
  const Affine map = affine();
  const std::vector<double>& a = map.a;
  const std::vector<double>& b = map.b;
  const bool shared = a.size() == 1;
  const std::int64_t grain =
      std::max<std::int64_t>(1, detail::kParallelGrain / std::max<std::int64_t>(features, 1));
  parallel_for(n, grain, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t i = begin; i < end; ++i) {
      const float* from = x + i * features;
      float* to = y + i * features;
      if (shared)
        for (std::int64_t f = 0; f < features; ++f) to[f] = Affine::map(from[f], a[0], b[0]);
      else
        for (std::int64_t f = 0; f < features; ++f) to[f] = Affine::map(from[f], a[f], b[f]);
    }
  });
  return out;
}

Preprocessing::Affine Preprocessing::affine() const {
  Affine affine{std::vector<double>(mean_.size()), std::vector<double>(mean_.size())};
  for (std::size_t k = 0; k < mean_.size(); ++k)
    affine.a[k] = scale_ / std_[k], affine.b[k] = -mean_[k] / std_[k];
  return affine;
}

nlohmann::json Preprocessing::to_json() const {
  return {{"scale", scale_}, {"mean", mean_}, {"std", std_}};
}

Preprocessing Preprocessing::from_json(const nlohmann::json& json) {
  Preprocessing p;
  try {
    p.scale_ = json.at("scale").get<double>();
    p.mean_ = json.at("mean").get<std::vector<double>>();
    p.std_ = json.at("std").get<std::vector<double>>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("preprocessing: malformed description {}: {}", json.dump(), e.what()));
  }
  if (p.mean_.empty() || p.mean_.size() != p.std_.size())
    throw Error(
        fmt::format("preprocessing: mean and std must be non-empty and of equal length "
                    "in {}",
                    json.dump()));
  for (double s : p.std_)
    if (!(s > 0))
      throw Error(fmt::format("preprocessing: std must be positive in {}", json.dump()));
  return p;
}

}  // namespace lathe
