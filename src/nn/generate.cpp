// Sampling text from a GPT. The cached path keeps each layer's keys and values, so a new token
// costs one position's pass through the layers; the uncached path (the reference it is tested
// against) re-runs the whole context through GPT::forward every step.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/gpt.h"
#include "lathe/ops.h"
#include "src/nn/gpt_block.h"
#include "src/tensor/dispatch.h"

namespace lathe {
namespace {

std::vector<double> last_row(const Tensor& logits) {
  const std::int64_t vocab = logits.size(-1);
  const std::vector<double> all = logits.to_vector();
  return {all.end() - vocab, all.end()};
}

class KVCache {
 public:
  explicit KVCache(GPT& model) : model_(model), config_(model.config()) {
    const DType dtype = model.token_embedding().dtype();
    for (std::int64_t i = 0; i < config_.n_layer; ++i) {
      keys_.push_back(Tensor::empty({config_.block_size, config_.n_embd}, dtype));
      values_.push_back(Tensor::empty({config_.block_size, config_.n_embd}, dtype));
    }
  }
  std::int64_t length() const { return length_; }
  void reset() { length_ = 0; }

  // Runs `tokens` at the positions after the cached ones; returns the last one's logits.
  std::vector<double> extend(const std::vector<std::int64_t>& tokens) {
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
    return last_row(matmul(last, model_.token_embedding(), false, true));
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

// The next token from logits: the most likely at temperature 0, otherwise a draw from
// softmax(logits / temperature) restricted to the top_k most likely (ties with the k-th kept).
std::int64_t sample_token(std::vector<double> logits, const SamplingOptions& options,
                          Generator& generator) {
  const auto vocab = static_cast<std::int64_t>(logits.size());
  const auto most_likely = [&] {
    return std::max_element(logits.begin(), logits.end()) - logits.begin();
  };
  if (options.temperature == 0) return most_likely();
  std::vector<double> scaled = logits;
  for (double& l : scaled) l /= options.temperature;
  // A temperature so small that the logits overflow is temperature 0 for every purpose.
  if (!std::all_of(scaled.begin(), scaled.end(), [](double l) { return std::isfinite(l); }))
    return most_likely();
  logits = std::move(scaled);
  if (options.top_k > 0 && options.top_k < vocab) {
    std::vector<double> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (options.top_k - 1), sorted.end(),
                     std::greater<>());
    const double threshold = sorted[options.top_k - 1];
    for (double& l : logits)
      if (l < threshold) l = -std::numeric_limits<double>::infinity();
  }
  const double top = *std::max_element(logits.begin(), logits.end());
  double total = 0;
  for (double& l : logits) total += l = std::exp(l - top);
  const double u = generator.uniform() * total;
  double cumulative = 0;
  for (std::int64_t i = 0; i < vocab; ++i) {
    cumulative += logits[i];
    if (u < cumulative) return i;
  }
  // Rounding left u at the very top: the last token with any probability.
  for (std::int64_t i = vocab - 1; i >= 0; --i)
    if (logits[i] > 0) return i;
  return vocab - 1;
}

void check_request(const GPT& model, const std::vector<std::int64_t>& prompt,
                   std::int64_t max_new_tokens, const SamplingOptions& options) {
  if (prompt.empty()) throw Error("generate: the prompt has no tokens");
  const std::int64_t vocab = model.config().vocab_size;
  for (std::size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      throw Error(fmt::format("generate: prompt token {} is {}, outside the vocabulary [0, {})", i,
                              prompt[i], vocab));
  if (max_new_tokens < 0)
    throw Error(fmt::format("generate: max_new_tokens must be >= 0, got {}", max_new_tokens));
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error(
        fmt::format("generate: temperature must be a number >= 0, got {}", options.temperature));
  if (options.top_k < 0)
    throw Error(fmt::format("generate: top_k must be >= 0, got {}", options.top_k));
}

}  // namespace

std::vector<std::int64_t> generate(GPT& model, const std::vector<std::int64_t>& prompt,
                                   std::int64_t max_new_tokens, const SamplingOptions& options,
                                   const std::function<bool(std::int64_t)>& on_token,
                                   bool use_cache) {
  check_request(model, prompt, max_new_tokens, options);
  EvalModeGuard eval_mode(model);
  NoGradGuard no_grad;
  Generator generator(options.seed);
  const std::int64_t block = model.config().block_size;
  std::vector<std::int64_t> context = prompt, produced;
  const auto window = [&] {
    const auto begin =
        context.size() > static_cast<std::size_t>(block) ? context.end() - block : context.begin();
    return std::vector<std::int64_t>(begin, context.end());
  };
  const auto uncached_logits = [&] {
    const std::vector<std::int64_t> tokens = window();
    const auto t = static_cast<std::int64_t>(tokens.size());
    return last_row(model.forward(Tensor::from_indices(tokens, {1, t})));
  };

  KVCache cache(model);
  std::vector<double> logits = use_cache ? cache.extend(window()) : uncached_logits();
  for (std::int64_t step = 0; step < max_new_tokens; ++step) {
    const std::int64_t token = sample_token(logits, options, generator);
    produced.push_back(token);
    context.push_back(token);
    if (on_token && !on_token(token)) break;
    if (step + 1 == max_new_tokens) break;
    if (!use_cache) {
      logits = uncached_logits();
    } else if (cache.length() < block) {
      logits = cache.extend({token});
    } else {
      // The context slides past block_size: positions shift, so the window is encoded afresh.
      cache.reset();
      logits = cache.extend(window());
    }
  }
  return produced;
}

}  // namespace lathe
