// Layers for token sequences: LayerNorm and Embedding.
#include <fmt/format.h>

#include <cmath>

#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/ops.h"

namespace lathe {

LayerNorm::LayerNorm(std::int64_t features, double eps, bool bias, DType dtype)
    : features_(features), eps_(eps) {
  if (features <= 0)
    throw Error(fmt::format("layer_norm: features must be positive, got {}", features));
  if (!(eps > 0) || !std::isfinite(eps))
    throw Error(fmt::format("layer_norm: eps must be a positive number, got {}", eps));
  weight_ = register_parameter("weight", Tensor::ones({features}, dtype));
  if (bias) bias_ = register_parameter("bias", Tensor::zeros({features}, dtype));
}

Tensor LayerNorm::forward(const Tensor& input) {
  return layer_norm(input, weight_, bias_, eps_);
}

nlohmann::json LayerNorm::spec() const {
  return {{"type", type()}, {"features", features_}, {"eps", eps_}, {"bias", bias_.defined()}};
}

Embedding::Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& generator,
                     DType dtype)
    : num_embeddings_(num_embeddings), dim_(dim) {
  if (num_embeddings <= 0 || dim <= 0)
    throw Error(fmt::format("embedding: sizes must be positive, got {} x {}", num_embeddings, dim));
  Tensor weight = Tensor::empty({num_embeddings, dim}, dtype);
  normal_(weight, 0.0, 1.0, generator);
  weight_ = register_parameter("weight", weight);
}

Tensor Embedding::forward(const Tensor& indices) {
  if (!indices.defined() || indices.dtype() != DType::Int64)
    throw Error("embedding: indices must be an int64 tensor");
  Shape shape = indices.shape();
  const Tensor rows = index_select(weight_, 0, reshape(indices, {indices.numel()}));
  shape.push_back(dim_);
  return reshape(rows, shape);
}

nlohmann::json Embedding::spec() const {
  return {{"type", type()}, {"num_embeddings", num_embeddings_}, {"dim", dim_}};
}

}  // namespace lathe
