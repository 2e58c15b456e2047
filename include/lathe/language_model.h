#pragma once
// Language models as the rest of lathe sees them: a module that maps int64 token ids [B, T] to
// next-token logits [B, T, vocab], whatever its architecture (the GPT is one; a program may
// register its own), and sampling text from one (src/nn/generate.cpp). Training, bundles,
// `lathe generate` and `lathe serve` use only this interface.
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "lathe/nn.h"

namespace lathe {

class CausalLanguageModel : public Module {
 public:
  virtual std::int64_t vocab_size() const = 0;
  // The longest sequence forward() takes.
  virtual std::int64_t context_size() const = 0;

  // Incremental decoding (a key/value cache): extend() runs tokens at the positions after the
  // ones already seen and returns the logits of the last one ([1, vocab] or [vocab]); length()
  // positions are held, at most context_size().
  class Decoder {
   public:
    virtual ~Decoder() = default;
    virtual std::int64_t length() const = 0;
    virtual void reset() = 0;
    virtual Tensor extend(const std::vector<std::int64_t>& tokens) = 0;
  };
  // A decoder over this model in eval mode, or null when the model has none (generate() then
  // runs the whole window through forward() for every token).
  virtual std::unique_ptr<Decoder> decoder() { return nullptr; }
};

struct SamplingOptions {
  double temperature = 1.0;  // 0: always the most likely token
  std::int64_t top_k = 0;    // 0: all tokens
  std::uint64_t seed = 0;
};

// Autoregressive sampling from the model in eval mode without gradients, through its decoder
// when it has one. When the context would exceed context_size(), the last context_size() tokens
// are re-encoded (as an uncached model sees them). on_token is called with each new token as it
// is chosen; returning false stops early. Returns the new tokens (not the prompt). use_cache =
// false recomputes the whole context every step (the reference the cache is tested against).
std::vector<std::int64_t> generate(CausalLanguageModel& model,
                                   const std::vector<std::int64_t>& prompt,
                                   std::int64_t max_new_tokens, const SamplingOptions& options,
                                   const std::function<bool(std::int64_t)>& on_token = {},
                                   bool use_cache = true);

}  // namespace lathe
