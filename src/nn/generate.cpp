// Sampling text from any causal language model. The cached path runs the model's decoder (for
// the GPT, its key/value cache) one position at a time; the uncached path (the reference it is
// tested against) re-runs the whole context through forward() every step.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/language_model.h"
#include "lathe/ops.h"

namespace lathe {
namespace {

std::vector<double> last_row(const Tensor& logits) {
  const std::int64_t vocab = logits.size(-1);
  const std::vector<double> all = logits.to_vector();
  return {all.end() - vocab, all.end()};
}

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

void check_request(const CausalLanguageModel& model, const std::vector<std::int64_t>& prompt,
                   std::int64_t max_new_tokens, const SamplingOptions& options) {
  if (prompt.empty()) throw Error("generate: the prompt has no tokens");
  const std::int64_t vocab = model.vocab_size();
  for (std::size_t i = 0; i < prompt.size(); ++i)
    if (prompt[i] < 0 || prompt[i] >= vocab)
      throw Error(fmt::format("generate: prompt token {} is {}, outside the vocabulary [0, {})", i,
                              prompt[i], vocab));
  if (max_new_tokens < 0)
    throw Error(fmt::format("generate: max_new_tokens must be >= 0, got {}", max_new_tokens));
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error(fmt::format("generate: temperature must be a finite number >= 0, got {}",
                            options.temperature));
  if (options.top_k < 0)
    throw Error(fmt::format("generate: top_k must be >= 0, got {}", options.top_k));
}

}  // namespace

std::vector<std::int64_t> generate(CausalLanguageModel& model,
                                   const std::vector<std::int64_t>& prompt,
                                   std::int64_t max_new_tokens, const SamplingOptions& options,
                                   const std::function<bool(std::int64_t)>& on_token,
                                   bool use_cache) {
  check_request(model, prompt, max_new_tokens, options);
  EvalModeGuard eval_mode(model);
  NoGradGuard no_grad;
  Generator generator(options.seed);
  const std::int64_t block = model.context_size();
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

  const std::unique_ptr<CausalLanguageModel::Decoder> cache = use_cache ? model.decoder() : nullptr;
  std::vector<double> logits = cache ? last_row(cache->extend(window())) : uncached_logits();
  for (std::int64_t step = 0; step < max_new_tokens; ++step) {
    const std::int64_t token = sample_token(logits, options, generator);
    produced.push_back(token);
    context.push_back(token);
    if (on_token && !on_token(token)) break;
    if (step + 1 == max_new_tokens) break;
    if (!cache) {
      logits = uncached_logits();
    } else if (cache->length() < block) {
      logits = last_row(cache->extend({token}));
    } else {
      // The context slides past the model's context: positions shift, so the window is encoded
      // afresh.
      cache->reset();
      logits = last_row(cache->extend(window()));
    }
  }
  return produced;
}

}  // namespace lathe
