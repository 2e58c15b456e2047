// `lathe generate BUNDLE --prompt TEXT [--max-tokens N] [--temperature T] [--top-k K] [--seed S]
// [--no-cache]`: text from a language-model bundle, streamed to standard output as it is sampled.
#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/language_model.h"
#include "lathe/predict_io.h"
#include "lathe/text.h"
#include "src/cli/commands.h"
#include "src/data/utf8.h"
#include "src/tensor/blas.h"

namespace lathe::cli {
namespace {

struct GenerateOptions {
  std::string bundle;
  std::string prompt;
  std::int64_t max_tokens = 200;
  double temperature = 0.8;
  std::int64_t top_k = 0;
  std::string seed = "0";  // parsed here: CLI11 would wrap "-1" around to 2^64 - 1
  bool no_cache = false;
};

// Every option checked before anything is printed, each error one line naming the option.
SamplingOptions sampling_options(const GenerateOptions& options) {
  if (options.prompt.empty())
    throw Error("generate: --prompt is empty; the model needs at least one token to start from");
  if (options.max_tokens < 0)
    throw Error(
        fmt::format("generate: --max-tokens must be 0 or more, got {}", options.max_tokens));
  if (!(options.temperature >= 0) || !std::isfinite(options.temperature))
    throw Error(fmt::format("generate: --temperature must be a finite number >= 0, got {}",
                            options.temperature));
  if (options.top_k < 0)
    throw Error(fmt::format("generate: --top-k must be 0 or more, got {}", options.top_k));
  std::uint64_t seed = 0;
  const char* end = options.seed.data() + options.seed.size();
  const auto [stop, error] = std::from_chars(options.seed.data(), end, seed);
  if (options.seed.empty() || error != std::errc() || stop != end)
    throw Error(fmt::format("generate: --seed must be an integer in [0, {}], got '{}'",
                            std::numeric_limits<std::uint64_t>::max(), options.seed));
  return {options.temperature, options.top_k, seed};
}

void write_out(std::string_view text) {
  if (text.empty()) return;
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

void run_generate(const GenerateOptions& options) {
  const SamplingOptions sampling = sampling_options(options);
  check_bundle_signature(options.bundle);
  const LoadedBundle bundle = load_bundle(options.bundle);
  if (!is_language_model(bundle.info))
    throw Error(fmt::format(
        "{}: a {} model, not a language model: `lathe generate` takes bundles of language models "
        "(trained on [data] format = \"text\"); use `lathe predict` for this one",
        options.bundle, bundle.info.task.value("task", std::string("classification"))));
  const LanguageModel lm = as_language_model(bundle, options.bundle);
  // Byte-level BPE would take any bytes, and echo them: the output is promised to be UTF-8.
  if (const std::string problem = detail::utf8_problem(options.prompt); !problem.empty())
    throw Error(fmt::format("--prompt: {}", problem));
  std::vector<std::int64_t> prompt;
  try {
    prompt = lm.tokenizer->encode(options.prompt);
  } catch (const Error& e) {
    throw Error(fmt::format("--prompt: {}", e.what()));
  }
  // Generation multiplies one row at a time (the context's rows when it is re-encoded), where
  // OpenBLAS's threads cost more than they give; when other processes busy the cores they cost
  // far more (300 tokens: 24 s with them, 2.5 s without, on 2 vCPUs beside two busy loops).
  if (!std::getenv("OPENBLAS_NUM_THREADS")) detail::set_blas_threads(1);
  Utf8Stream utf8;
  write_out(options.prompt);
  generate(
      *lm.model, prompt, options.max_tokens, sampling,
      [&](std::int64_t token) {
        write_out(utf8.push(lm.tokenizer->token_bytes(token)));
        return true;
      },
      !options.no_cache);
  write_out(utf8.finish() + "\n");
}

}  // namespace

void add_generate_command(CLI::App& app) {
  auto options = std::make_shared<GenerateOptions>();
  CLI::App* command = app.add_subcommand(
      "generate", "Generate text with a language-model bundle, streamed as it is sampled");
  command
      ->add_option("bundle", options->bundle,
                   "a language-model bundle written by lathe train (on [data] format = \"text\")")
      ->required();
  command
      ->add_option("--prompt", options->prompt,
                   "the text to continue, printed first (the model sees as many of its last "
                   "tokens as its context holds); a char tokenizer must know every character")
      ->required();
  command
      ->add_option("--max-tokens", options->max_tokens, "tokens to sample after the prompt (>= 0)")
      ->capture_default_str();
  command
      ->add_option("--temperature", options->temperature,
                   "divides the logits before sampling (>= 0); 0 always takes the most likely "
                   "token")
      ->capture_default_str();
  command
      ->add_option("--top-k", options->top_k,
                   "sample among the K most likely tokens only (>= 0); 0 considers every token")
      ->capture_default_str();
  command
      ->add_option("--seed", options->seed,
                   "seed of the sampler (0 to 2^64 - 1): the same seed gives the same text")
      ->type_name("UINT")
      ->capture_default_str();
  command->add_flag("--no-cache", options->no_cache,
                    "recompute the whole context for every token instead of caching each layer's "
                    "keys and values (slower; the reference the cache is tested against)");
  command->callback([options] { run_generate(*options); });
}

}  // namespace lathe::cli
