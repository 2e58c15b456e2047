// Language models through the one Trainer: token windows as a batch source, bit-exact resume,
// weight decay on matrices only, gradient accumulation, sharded batches, language-model bundles,
// and the [model] type = "gpt" configuration.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <sstream>

#include "lathe/lathe.h"
#include "src/train/sharded_model.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;
using testing::TempDir;

const char* kText =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the "
    "season of Light, it was the season of Darkness, it was the spring of hope, it was the "
    "winter of despair.";

GPTConfig tiny(std::int64_t vocab) {
  GPTConfig config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 8;
  config.vocab_size = vocab;
  return config;
}

struct TinyCorpus {
  CharTokenizer tokenizer = CharTokenizer::train(kText);
  std::shared_ptr<const TokenStream> tokens =
      std::make_shared<const TokenStream>(tokenizer.encode(kText), 0.25);
  TokenWindows windows(TokenStream::Split split, std::int64_t per_pass) const {
    return TokenWindows(tokens, split, {4, 8, 3, per_pass});
  }
};

std::unique_ptr<Optimizer> decay_matrices_adamw(const Module& model, double lr = 1e-3) {
  OptimizerConfig adamw;
  adamw.type = "adamw";
  adamw.lr = lr;
  adamw.weight_decay = 0.1;
  adamw.decay_matrices_only = true;
  return make_optimizer(adamw, model.named_parameters());
}

std::map<std::string, Tensor> train_tiny(const TinyCorpus& s, const std::filesystem::path& dir,
                                         std::int64_t iterations, bool resume,
                                         std::int64_t accumulation = 1, std::int64_t shards = 1,
                                         std::ostream* log_to = nullptr) {
  Generator init(7);
  GPT model(tiny(s.tokenizer.vocab_size()), init);
  const auto optimizer = decay_matrices_adamw(model);
  TrainerOptions options;
  options.iterations = iterations;
  options.gradient_accumulation = accumulation;
  options.eval_every = 5;
  options.shards = shards;
  options.output_dir = dir;
  options.resume = resume;
  options.run_identity = {{"test", "tiny"}};
  std::ostringstream log;
  Trainer trainer(model, *optimizer, loss_for("cross_entropy"), Task::LanguageModel, options,
                  nullptr, log_to ? *log_to : log);
  TokenWindows train = s.windows(TokenStream::Split::Train, 0);
  TokenWindows validation = s.windows(TokenStream::Split::Validation, 2);
  TokenWindows estimate = s.windows(TokenStream::Split::Train, 2);
  trainer.fit(train, &validation, &estimate);
  return model.state_dict();
}

TEST(LanguageModelTrainer, ResumeContinuesBitForBit) {
  const TinyCorpus s;
  TempDir straight, split;
  const auto expected = train_tiny(s, straight.path(), 20, false);
  train_tiny(s, split.path(), 10, false);
  const auto resumed = train_tiny(s, split.path(), 20, true);
  for (const auto& [name, tensor] : expected)
    EXPECT_EQ(resumed.at(name).to_vector(), tensor.to_vector()) << name;
  // One metrics line per estimate: 0, 5, 10 from the first run, 15 and 20 after the resume.
  std::ifstream metrics(split.path() / "metrics.jsonl");
  std::string line;
  std::vector<std::int64_t> iterations;
  while (std::getline(metrics, line))
    iterations.push_back(nlohmann::json::parse(line)["step"].get<std::int64_t>());
  EXPECT_EQ(iterations, (std::vector<std::int64_t>{0, 5, 10, 15, 20}));
}

TEST(LanguageModelTrainer, LossFallsAndAccumulationTrainsToo) {
  const TinyCorpus s;
  for (std::int64_t accumulation : {1, 3}) {
    TempDir dir;
    train_tiny(s, dir.path(), 30, false, accumulation);
    std::ifstream metrics(dir.path() / "metrics.jsonl");
    std::string first, line, last;
    std::getline(metrics, first);
    while (std::getline(metrics, line)) last = line;
    EXPECT_LT(nlohmann::json::parse(last)["train_loss"].get<double>(),
              nlohmann::json::parse(first)["train_loss"].get<double>() - 0.3)
        << "accumulation " << accumulation;
  }
}

// Restores the pool's thread count at scope exit.
class ThreadCount {
 public:
  explicit ThreadCount(int threads) : previous_(num_threads()) { set_num_threads(threads); }
  ~ThreadCount() { set_num_threads(previous_); }

 private:
  int previous_;
};

// The loss and every parameter gradient of one batch computed in `shards` shards (on as many
// pool threads), scaled by `scale`, after a first batch that leaves gradients to accumulate onto.
std::pair<double, std::map<std::string, std::vector<double>>> sharded_step(
    const TinyCorpus& s, DType dtype, std::int64_t shards, std::int64_t rows, double scale) {
  const ThreadCount threads(static_cast<int>(shards));
  Generator init(7), batches(11);
  GPT model(tiny(s.tokenizer.vocab_size()), init, dtype);
  detail::ShardedModel sharded(model, shards);
  const LossFunction loss = loss_for("cross_entropy");
  const auto [x0, y0] = s.tokens->sample(TokenStream::Split::Train, rows, 8, batches);
  sharded.loss_backward({x0, y0}, loss, scale, nullptr);
  const auto [x, y] = s.tokens->sample(TokenStream::Split::Train, rows, 8, batches);
  const double value = sharded.loss_backward({x, y}, loss, scale, nullptr);
  std::map<std::string, std::vector<double>> grads;
  for (const auto& [name, tensor] : model.named_parameters()) {
    EXPECT_TRUE(tensor.grad().defined()) << name;
    if (tensor.grad().defined()) grads[name] = tensor.grad().to_vector();
  }
  return {value, grads};
}

TEST(ShardedModel, ShardsOnThreadsGiveTheWholeBatchsLossAndGradients) {
  const TinyCorpus s;
  // float64 shows the arithmetic is the same up to summation order; float32 is what trains.
  for (const auto& [dtype, tolerance] :
       {std::pair{DType::Float64, 1e-12}, {DType::Float32, 2e-5}}) {
    const auto [whole_loss, whole] = sharded_step(s, dtype, 1, 5, 0.5);
    for (std::int64_t shards : {2, 3}) {
      const auto [loss, grads] = sharded_step(s, dtype, shards, 5, 0.5);  // 5 rows: uneven
      EXPECT_NEAR(loss, whole_loss, tolerance * std::abs(whole_loss)) << shards;
      ASSERT_EQ(grads.size(), whole.size());
      for (const auto& [name, expected] : whole) {
        const std::vector<double>& got = grads.at(name);
        ASSERT_EQ(got.size(), expected.size()) << name;
        double largest = 0;
        for (double v : expected) largest = std::max(largest, std::abs(v));
        for (std::size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], expected[i], tolerance * largest)
              << name << "[" << i << "], " << shards << " shards";
      }
    }
  }
}

TEST(ShardedModel, WithDropoutEachShardDrawsFromItsOwnSeededStream) {
  const TinyCorpus s;
  const ThreadCount threads(2);
  Generator init(7), batches(11);
  GPTConfig config = tiny(s.tokenizer.vocab_size());
  config.dropout = 0.2;
  GPT model(config, init);
  detail::ShardedModel sharded(model, 2);
  const LossFunction loss_function = loss_for("cross_entropy");
  const auto [x, y] = s.tokens->sample(TokenStream::Split::Train, 4, 8, batches);
  manual_seed(5);
  const double loss = sharded.loss_backward({x, y}, loss_function, 1.0, nullptr);
  const std::vector<double> grad = model.named_parameters()[0].tensor.grad().to_vector();

  // The same loss by hand: shard i's masks come from Generator(i-th draw of the default one).
  manual_seed(5);
  const std::uint64_t seeds[] = {default_generator().next_u64(), default_generator().next_u64()};
  double expected = 0;
  for (int part = 0; part < 2; ++part) {
    Generator stream(seeds[part]);
    const DefaultGeneratorScope own_stream(stream);
    NoGradGuard no_grad;
    expected +=
        0.5 *
        model.loss(slice(x, 0, 2 * part, 2 * part + 2), slice(y, 0, 2 * part, 2 * part + 2)).item();
  }
  EXPECT_NEAR(loss, expected, 1e-6 * expected);

  // Reproducible: the same seed gives the same gradients bit for bit.
  model.zero_grad();
  manual_seed(5);
  EXPECT_EQ(sharded.loss_backward({x, y}, loss_function, 1.0, nullptr), loss);
  EXPECT_EQ(model.named_parameters()[0].tensor.grad().to_vector(), grad);
}

// A sharded run trains as an unsharded one does (the batch's rows weigh the same; only the
// order of sums differs) and resumes bit for bit too.
TEST(ShardedModel, ShardedTrainingMatchesUnshardedAndResumes) {
  const TinyCorpus s;
  const ThreadCount threads(2);
  TempDir plain, sharded, split;
  const auto expected = train_tiny(s, plain.path(), 10, false, 1, 1);
  const auto got = train_tiny(s, sharded.path(), 10, false, 1, 2);
  for (const auto& [name, tensor] : expected) {
    const auto a = tensor.to_vector(), b = got.at(name).to_vector();
    for (std::size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(b[i], a[i], 2e-5) << name;
  }
  train_tiny(s, split.path(), 5, false, 1, 2);
  const auto resumed = train_tiny(s, split.path(), 10, true, 1, 2);
  for (const auto& [name, tensor] : got)
    EXPECT_EQ(resumed.at(name).to_vector(), tensor.to_vector()) << name;
}

// Batch norm's running statistics would be updated by every shard at once: such a model trains
// unsharded (automatic) and asking for shards is an error that says why.
TEST(ShardedModel, AModelWithBuffersIsNotSharded) {
  Generator init(1);
  auto model = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":3,"out":4},
    {"type":"batch_norm1d","features":4},{"type":"linear","in":4,"out":2}])"),
                               init);
  EXPECT_EQ(shard_count_for(*model, 0, 64), 1);
  EXPECT_NE(error_of([&] { shard_count_for(*model, 2, 64); }).find("batch norm's running"),
            std::string::npos);
  auto mlp = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":3,"out":2}])"), init);
  EXPECT_EQ(shard_count_for(*mlp, 0, 64), num_threads());
  EXPECT_EQ(shard_count_for(*mlp, 0, 1), 1) << "at most one shard per row";
}

TEST(LanguageModelTrainer, ResumeRefusesAnotherRun) {
  const TinyCorpus s;
  TempDir dir;
  train_tiny(s, dir.path(), 5, false);
  Generator init(7);
  GPT model(tiny(s.tokenizer.vocab_size()), init);
  const auto optimizer = decay_matrices_adamw(model);
  TrainerOptions options;
  options.iterations = 10;
  options.output_dir = dir.path();
  options.resume = true;
  options.run_identity = {{"test", "other"}};
  std::ostringstream log;
  Trainer trainer(model, *optimizer, loss_for("cross_entropy"), Task::LanguageModel, options,
                  nullptr, log);
  TokenWindows train = s.windows(TokenStream::Split::Train, 0);
  EXPECT_NE(error_of([&] { trainer.fit(train, nullptr); }).find("different model or data setup"),
            std::string::npos);
}

TEST(LanguageModelTrainer, AnEndlessSourceNeedsIterations) {
  const TinyCorpus s;
  Generator init(7);
  GPT model(tiny(s.tokenizer.vocab_size()), init);
  const auto optimizer = decay_matrices_adamw(model);
  std::ostringstream log;
  Trainer trainer(model, *optimizer, loss_for("cross_entropy"), Task::LanguageModel, {}, nullptr,
                  log);
  TokenWindows train = s.windows(TokenStream::Split::Train, 0);
  EXPECT_NE(error_of([&] { trainer.fit(train, nullptr); }).find("train for iterations"),
            std::string::npos);
}

// The seed-style lines of a language model's run: an estimate at 0, every eval_every steps and
// at the end; a loss line every log_every steps.
TEST(LanguageModelTrainer, PrintsEstimatesAndLossLines) {
  const TinyCorpus s;
  TempDir dir;
  std::ostringstream log;
  train_tiny(s, dir.path(), 10, false, 1, 1, &log);
  const std::string text = log.str();
  for (const char* line : {"iter 0: train loss ", "iter 5: train loss ", "iter 10: train loss "})
    EXPECT_NE(text.find(line), std::string::npos) << text;
  EXPECT_NE(text.find(", val loss "), std::string::npos) << text;
}

TEST(LanguageModelOptimizer, DecaysMatricesOnly) {
  Generator init(1);
  GPT model(tiny(10), init);
  OptimizerConfig adamw;
  adamw.type = "adamw";
  adamw.lr = 0.1;
  adamw.weight_decay = 0.5;
  adamw.decay_matrices_only = true;
  const auto optimizer = make_optimizer(adamw, model.named_parameters());
  std::map<std::string, Tensor> before;
  for (const auto& [name, tensor] : model.state_dict()) before[name] = tensor.clone();
  for (const NamedTensor& p : model.named_parameters()) {
    Tensor t = p.tensor;
    t.set_grad(Tensor::zeros(t.shape()));
  }
  optimizer->step();
  for (const auto& [name, tensor] : model.state_dict()) {
    const auto old = before.at(name).to_vector(), now = tensor.to_vector();
    const double factor = tensor.dim() >= 2 ? 1 - 0.1 * 0.5 : 1.0;  // AdamW: p *= 1 - lr * wd
    for (std::size_t i = 0; i < old.size(); ++i) ASSERT_NEAR(now[i], old[i] * factor, 1e-6) << name;
  }
}

TEST(LanguageModelBundle, RoundTripsModelAndTokenizer) {
  const CharTokenizer tokenizer = CharTokenizer::train(kText);
  Generator init(2);
  GPT model(tiny(tokenizer.vocab_size()), init);
  TempDir dir;
  save_language_model(dir.path() / "lm.safetensors", model, tokenizer, {{"note", "test"}});
  const LanguageModel loaded = load_language_model(dir.path() / "lm.safetensors");
  EXPECT_EQ(loaded.tokenizer->to_json(), tokenizer.to_json());
  EXPECT_EQ(loaded.model->spec(), model.spec());
  const Tensor tokens = Tensor::from_indices(tokenizer.encode("it was t"), {1, 8});
  model.eval();
  EXPECT_EQ(loaded.model->forward(tokens).to_vector(), model.forward(tokens).to_vector());
  EXPECT_FALSE(loaded.model->is_training());

  const CharTokenizer other = CharTokenizer::train("abc");
  EXPECT_EQ(error_of([&] { save_language_model(dir.path() / "x.safetensors", model, other, {}); }),
            fmt::format("save: the tokenizer has 3 tokens but the model's vocab_size is {}",
                        tokenizer.vocab_size()));
  // A classifier bundle is not a language model.
  Sequential mlp;
  mlp.append(std::make_shared<Linear>(2, 2, true, init));
  save_bundle(dir.path() / "mlp.safetensors", mlp, BundleInfo{mlp.spec(), {}, {}, {}});
  EXPECT_NE(error_of([&] {
              load_language_model(dir.path() / "mlp.safetensors");
            }).find("not a language model"),
            std::string::npos);
}

// The fuzzer's seed language models (fuzz/make_seeds.py) must stay valid bundles.
TEST(LanguageModelBundle, FuzzSeedsLoadAndGenerate) {
  for (const char* name : {"bundle_gpt_char", "bundle_gpt_bpe"}) {
    const LanguageModel lm = load_language_model(
        std::string(LATHE_SOURCE_DIR "/fuzz/corpus/fuzz_safetensors/") + name + ".safetensors");
    EXPECT_EQ(generate(*lm.model, {1}, 3, {}).size(), 3u) << name;
  }
}

// trainer.sample_every: a sample of generated text every N steps in samples.jsonl, for a
// language model only; the samples do not change the training (their generator is their own).
TEST(LanguageModelConfig, SampleEveryWritesSamples) {
  TempDir dir;
  const auto corpus = dir.write("corpus.txt", std::string(kText) + kText);
  const auto run = [&](std::int64_t sample_every, const std::string& output) {
    const std::string text = fmt::format(R"(
[data]
format = "text"
path = "{}"
[model]
type = "gpt"
n_layer = 1
n_head = 2
n_embd = 16
block_size = 8
[trainer]
batch_size = 4
iterations = 6
eval_every = 3
eval_iters = 2
log_every = 0
sample_every = {}
output_dir = "{}"
)",
                                         corpus.string(), sample_every, dir / output);
    std::ostringstream log;
    return run_training(parse_run_config(text, "c.toml", dir.path()), false, log);
  };
  const RunResult sampled = run(2, "sampled");
  std::istringstream samples(testing::read_file(dir.path() / "sampled" / "samples.jsonl"));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(samples, line);) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["step"], 2);
  EXPECT_EQ(lines[2]["step"], 6);
  EXPECT_EQ(lines[2]["text"].get<std::string>(), sampled.sample)
      << "the last sample is the run's final one (same seed, same weights)";
  const RunResult plain = run(0, "plain");
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "plain" / "samples.jsonl"));
  EXPECT_EQ(plain.history.back().validation.loss, sampled.history.back().validation.loss);

  EXPECT_EQ(error_of([] {
              load_run_config(LATHE_SOURCE_DIR "/examples/house_prices/config.toml",
                              {"trainer.sample_every=5"});
            }),
            "--set: trainer.sample_every saves a language model's samples; it needs [data] "
            "format = \"text\"");
}

TEST(LanguageModelConfig, GPTSectionsParseAndMismatchesAreErrors) {
  const std::string text = R"(
[data]
format = "text"
path = "corpus.txt"
tokenizer = "bpe"
vocab_size = 300
[model]
type = "gpt"
n_layer = 2
n_head = 2
n_embd = 32
block_size = 16
scaled_residual_init = false
[trainer]
iterations = 50
eval_every = 10
gradient_accumulation = 2
)";
  const RunConfig config = parse_run_config(text, "c.toml", "/base");
  EXPECT_EQ(config.model["type"], "gpt");
  EXPECT_EQ(config.data.path, std::filesystem::path("/base/corpus.txt"));
  EXPECT_EQ(config.data.tokenizer, "bpe");
  EXPECT_EQ(config.data.vocab_size, 300);
  EXPECT_EQ(config.model["n_layer"], 2);
  EXPECT_EQ(config.model["block_size"], 16);
  EXPECT_EQ(config.model["scaled_residual_init"], false);
  EXPECT_FALSE(config.model.contains("vocab_size")) << "the tokenizer's, filled in by the run";
  std::string without_init = text;
  const std::string init_line = "scaled_residual_init = false\n";
  without_init.erase(without_init.find(init_line), init_line.size());
  EXPECT_EQ(parse_run_config(without_init, "c.toml", "/base").model["scaled_residual_init"], true);
  EXPECT_EQ(config.trainer.iterations, 50);
  EXPECT_EQ(config.trainer.gradient_accumulation, 2);
  EXPECT_TRUE(config.optimizer.decay_matrices_only) << "text data decays matrices only";
  EXPECT_EQ(config.to_json()["model"]["type"], "gpt");

  const auto error = [](const std::string& toml) {
    return error_of([&] { parse_run_config(toml, "c.toml", "/"); });
  };
  EXPECT_EQ(error("[data]\nformat = \"text\"\npath = \"x\"\n[model]\ntype = \"gpt\"\nn_head = 3\n"),
            "c.toml:5: [model]: gpt: n_embd 128 must be a multiple of n_head 3");
  EXPECT_EQ(
      error("[data]\nformat = \"csv\"\npath = \"x\"\ntarget = \"y\"\n[model]\ntype = \"gpt\"\n"),
      "c.toml:6: model type 'gpt' takes token ids, which only [data] format = \"text\" gives "
      "(this data is \"csv\")");
  EXPECT_EQ(error("[data]\nformat = \"text\"\npath = \"x\"\n[model]\nlayers = [{ type = "
                  "\"relu\" }]\n"),
            "c.toml:5: [data] format = \"text\" gives token ids; the model must take them (a "
            "language model type such as \"gpt\"), not 'relu'");
  EXPECT_EQ(error("[data]\nformat = \"text\"\npath = \"x\"\n[model]\ntype = \"gtp\"\n"),
            "c.toml:5: [model]: unknown layer type 'gtp'; known types: linear, conv2d, "
            "max_pool2d, avg_pool2d, global_avg_pool, batch_norm1d, batch_norm2d, reshape, "
            "flatten, dropout, relu, leaky_relu, sigmoid, tanh, gelu, gpt, onnx_graph");
}

}  // namespace
}  // namespace lathe
