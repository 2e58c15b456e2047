// The GPT's key/value cache: each layer's keys and values of the positions seen so far, so a new
// token costs one position's pass through the blocks' own layers.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "lathe/gpt.h"
#include "lathe/ops.h"
#include "src/nn/gpt_block.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

class GPTDecoder : public CausalLanguageModel::Decoder {
 public:
  explicit GPTDecoder(GPT& model) : model_(model), config_(model.config()) {
    const DType dtype = model.token_embedding().dtype();
    for (std::int64_t i = 0; i < config_.n_layer; ++i) {
      keys_.push_back(Tensor::empty({config_.block_size, config_.n_embd}, dtype));
      values_.push_back(Tensor::empty({config_.block_size, config_.n_embd}, dtype));
    }
  }
  std::int64_t length() const override { return length_; }
  void reset() override { length_ = 0; }

  // Runs `tokens` at the positions after the cached ones; returns the last one's logits.
  Tensor extend(const std::vector<std::int64_t>& tokens) override {
    const auto count = static_cast<std::int64_t>(tokens.size());
    const std::int64_t start = length_;
    std::vector<std::int64_t> positions(tokens.size());
    for (std::int64_t i = 0; i < count; ++i) positions[i] = start + i;
    Tensor x =
        index_select(model_.token_embedding(), 0, Tensor::from_indices(tokens, {count})) +
        index_select(model_.position_embedding(), 0, Tensor::from_indices(positions, {count}));
    for (std::int64_t layer = 0; layer < config_.n_layer; ++layer) {
      auto& block = static_cast<detail::GPTBlock&>(*model_.blocks()[layer]);
      const Tensor packed = block.qkv->forward(block.ln1->forward(x));  // [count, 3C]
      const Tensor attended = attend(packed, layer, start, count);
      x = block.feed_forward(x + block.proj->forward(attended));
    }
    length_ += count;
    const Tensor last = model_.final_norm().forward(slice(x, 0, count - 1, count));
    return matmul(last, model_.token_embedding(), false, true);
  }

 private:
  // Stores the new rows' keys and values, then attends each new row to every position up to
  // its own.
  Tensor attend(const Tensor& packed, std::int64_t layer, std::int64_t start, std::int64_t count) {
    const std::int64_t c = config_.n_embd, heads = config_.n_head, width = c / heads;
    Tensor out = Tensor::empty({count, c}, packed.dtype());
    detail::dispatch_floating(packed.dtype(), "generate", [&](auto tag) {
      using T = decltype(tag);
      const T* qkv = packed.data<T>();
      T* keys = keys_[layer].data<T>();
      T* values = values_[layer].data<T>();
      for (std::int64_t r = 0; r < count; ++r) {
        std::copy_n(qkv + r * 3 * c + c, c, keys + (start + r) * c);
        std::copy_n(qkv + r * 3 * c + 2 * c, c, values + (start + r) * c);
      }
      const T scale = static_cast<T>(1.0 / std::sqrt(static_cast<double>(width)));
      std::vector<T> scores(static_cast<std::size_t>(start + count));
      T* o = out.data<T>();
      for (std::int64_t r = 0; r < count; ++r) {
        const std::int64_t visible = start + r + 1;
        for (std::int64_t h = 0; h < heads; ++h) {
          const T* q = qkv + r * 3 * c + h * width;
          T top = -std::numeric_limits<T>::infinity();
          for (std::int64_t j = 0; j < visible; ++j) {
            const T* k = keys + j * c + h * width;
            T dot = 0;
            for (std::int64_t d = 0; d < width; ++d) dot += q[d] * k[d];
            scores[j] = dot * scale;
            top = std::max(top, scores[j]);
          }
          T total = 0;
          for (std::int64_t j = 0; j < visible; ++j) total += scores[j] = std::exp(scores[j] - top);
          T* orow = o + r * c + h * width;
          std::fill_n(orow, width, T(0));
          for (std::int64_t j = 0; j < visible; ++j) {
            const T weight = scores[j] / total;
            const T* v = values + j * c + h * width;
            for (std::int64_t d = 0; d < width; ++d) orow[d] += weight * v[d];
          }
        }
      }
    });
    return out;
  }

  GPT& model_;
  const GPTConfig& config_;
  std::vector<Tensor> keys_, values_;
  std::int64_t length_ = 0;
};

}  // namespace

std::unique_ptr<CausalLanguageModel::Decoder> GPT::decoder() {
  return std::make_unique<GPTDecoder>(*this);
}

}  // namespace lathe
