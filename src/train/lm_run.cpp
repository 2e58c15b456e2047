// run_language_model_training: the config-driven pipeline behind `lathe train` for GPTs.
#include <fmt/format.h>

#include <ostream>

#include "lathe/distributed.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/lm_train.h"
#include "lathe/run.h"

namespace lathe {
namespace {

std::unique_ptr<Tokenizer> train_tokenizer(const DataConfig& d, std::string_view corpus) {
  if (d.tokenizer == "char") return std::make_unique<CharTokenizer>(CharTokenizer::train(corpus));
  // BPE merges are learned from the training part of the text only.
  const auto training_bytes =
      static_cast<std::size_t>(static_cast<double>(corpus.size()) * (1.0 - d.validation_fraction));
  return std::make_unique<BpeTokenizer>(
      BpeTokenizer::train(corpus.substr(0, training_bytes), d.vocab_size));
}

}  // namespace

std::unique_ptr<Optimizer> make_language_model_optimizer(const OptimizerConfig& c,
                                                         const GPT& model) {
  std::unique_ptr<Optimizer> optimizer = make_optimizer(c, model.named_parameters());
  optimizer->exempt_from_weight_decay([](const NamedTensor& p) { return p.tensor.dim() < 2; });
  return optimizer;
}

LanguageModelRunResult run_language_model_training(const RunConfig& config, bool resume,
                                                   std::ostream& out) {
  if (config.model_type != "gpt")
    throw Error("run_language_model_training: the config's [model] is not type = \"gpt\"");
  if (ProcessGroup::world().distributed())
    throw Error("language models train in one process; mpirun is not supported for them yet");
  const TrainerConfig& t = config.trainer;
  manual_seed(t.seed);
  const std::string corpus = read_text_corpus(config.data.path);
  const std::unique_ptr<Tokenizer> tokenizer = train_tokenizer(config.data, corpus);
  const TokenStream tokens(tokenizer->encode(corpus), config.data.validation_fraction);
  out << fmt::format(
      "Data: {} bytes of text, {} tokenizer with {} tokens; {} training, {} "
      "validation tokens\n",
      corpus.size(), tokenizer->kind(), tokenizer->vocab_size(),
      tokens.size(TokenStream::Split::Train), tokens.size(TokenStream::Split::Validation));

  GPTConfig gpt = config.gpt;
  gpt.vocab_size = tokenizer->vocab_size();
  Generator init(t.seed);
  GPT model(gpt, init);
  out << fmt::format("Model: GPT, {} layers, {} heads, {} wide, context {}, {} parameters\n",
                     gpt.n_layer, gpt.n_head, gpt.n_embd, gpt.block_size, model.parameter_count());
  const std::unique_ptr<Optimizer> optimizer =
      make_language_model_optimizer(config.optimizer, model);

  LanguageModelTrainerOptions options;
  options.iterations = t.iterations;
  options.batch_size = t.batch_size;
  options.gradient_accumulation = t.gradient_accumulation;
  options.eval_every = t.eval_every;
  options.eval_iters = t.eval_iters;
  options.log_every = t.log_every;
  options.clip_grad_norm = t.clip_grad_norm;
  options.seed = t.seed;
  options.output_dir = t.output_dir;
  options.resume = resume;
  const nlohmann::json resolved = config.to_json();
  options.run_identity = {{"model", resolved["model"]},
                          {"data", resolved["data"]},
                          {"tokenizer", tokenizer->to_json()},
                          {"batch_size", t.batch_size},
                          {"gradient_accumulation", t.gradient_accumulation},
                          {"seed", t.seed}};
  LanguageModelTrainer trainer(model, *optimizer,
                               make_schedule(config.schedule, config.optimizer.lr, t.iterations),
                               tokens, options, out);
  LanguageModelRunResult result;
  result.history = trainer.fit();
  result.milliseconds_per_iteration = trainer.milliseconds_per_iteration();
  const LanguageModelRecord& last = result.history.back();
  out << fmt::format("Final: train loss {:.4f}, val loss {:.4f}; {:.1f} ms/iteration\n",
                     last.train_loss, last.validation_loss, result.milliseconds_per_iteration);

  nlohmann::json metrics = {{"iterations", last.iteration},
                            {"train_loss", last.train_loss},
                            {"validation_loss", last.validation_loss},
                            {"ms_per_iteration", result.milliseconds_per_iteration}};
  result.bundle_path = t.output_dir / "model.safetensors";
  std::filesystem::create_directories(t.output_dir);
  save_language_model(result.bundle_path, model, *tokenizer, metrics);
  write_file_atomically(t.output_dir / "config.json", config.to_json().dump(2) + "\n");
  out << fmt::format("Saved model bundle: {}\n", result.bundle_path.string());

  // A taste of what it learned: 200 tokens after the corpus's first character (all its bytes).
  std::size_t first = corpus.empty() ? 0 : 1;
  while (first < corpus.size() && (static_cast<unsigned char>(corpus[first]) & 0xC0) == 0x80)
    ++first;
  const std::string start = corpus.substr(0, first);
  result.sample =
      tokenizer->decode(generate(model, tokenizer->encode(start), 200, {0.8, 0, t.seed}));
  out << "Sample:\n" << start << result.sample << "\n";
  return result;
}

}  // namespace lathe
