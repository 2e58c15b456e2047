// The language-model training loop: the order of torch_gpt.py (estimate at 0, every eval_every
// iterations and at the end; set the step's learning rate; forward, backward, clip, step), with
// checkpoints at every estimate.
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <ostream>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/lm_train.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/train/checkpoint_state.h"
#include "src/train/gpt_replicas.h"

namespace lathe {
namespace {

// Estimates draw windows from streams seeded by (seed, iteration, split), so they neither
// disturb the training batches nor change when a run is resumed.
constexpr std::uint64_t kEstimateStream = 0x9e3779b97f4a7c15ULL;

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

nlohmann::json LanguageModelRecord::to_json() const {
  return {{"iteration", iteration},
          {"train_loss", train_loss},
          {"validation_loss", validation_loss},
          {"learning_rate", learning_rate},
          {"train_seconds", train_seconds}};
}

LanguageModelRecord LanguageModelRecord::from_json(const nlohmann::json& json) {
  LanguageModelRecord r;
  r.iteration = json.at("iteration").get<std::int64_t>();
  r.train_loss = json.at("train_loss").get<double>();
  r.validation_loss = json.at("validation_loss").get<double>();
  r.learning_rate = json.at("learning_rate").get<double>();
  r.train_seconds = json.at("train_seconds").get<double>();
  return r;
}

LanguageModelTrainer::LanguageModelTrainer(GPT& model, Optimizer& optimizer,
                                           std::shared_ptr<const LRSchedule> schedule,
                                           const TokenStream& data,
                                           LanguageModelTrainerOptions options, std::ostream& out)
    : model_(model),
      optimizer_(optimizer),
      schedule_(std::move(schedule)),
      data_(data),
      options_(std::move(options)),
      out_(out),
      batches_(options_.seed),
      sharded_(std::make_unique<detail::ShardedGPT>(
          model_, std::clamp<std::int64_t>(options_.batch_size, 1, num_threads()))) {
  const auto positive = [](const char* key, std::int64_t value) {
    if (value < 1) throw Error(fmt::format("trainer.{} must be at least 1, got {}", key, value));
  };
  positive("iterations", options_.iterations);
  positive("batch_size", options_.batch_size);
  positive("gradient_accumulation", options_.gradient_accumulation);
  positive("eval_every", options_.eval_every);
  positive("eval_iters", options_.eval_iters);
  const std::int64_t needed = model_.config().block_size + 2;
  for (const auto split : {TokenStream::Split::Train, TokenStream::Split::Validation})
    if (data_.size(split) < needed)
      throw Error(
          fmt::format("the {} split has {} tokens; windows of block_size {} need at least {}",
                      split == TokenStream::Split::Train ? "training" : "validation",
                      data_.size(split), model_.config().block_size, needed));
}

LanguageModelTrainer::~LanguageModelTrainer() = default;

std::filesystem::path LanguageModelTrainer::checkpoint_path(const std::filesystem::path& dir) {
  return dir / "checkpoint.safetensors";
}

double LanguageModelTrainer::milliseconds_per_iteration() const {
  return session_steps_ == 0 ? 0.0
                             : 1000.0 * session_seconds_ / static_cast<double>(session_steps_);
}

LanguageModelRecord LanguageModelTrainer::estimate(std::int64_t iteration) {
  const bool was_training = model_.is_training();
  model_.eval();
  NoGradGuard no_grad;
  LanguageModelRecord record;
  record.iteration = iteration;
  record.learning_rate = optimizer_.learning_rate();
  record.train_seconds = train_seconds_;
  const std::int64_t block = model_.config().block_size;
  for (const auto split : {TokenStream::Split::Train, TokenStream::Split::Validation}) {
    Generator windows(
        options_.seed ^
        (kEstimateStream *
         static_cast<std::uint64_t>(2 * iteration + 1 + (split == TokenStream::Split::Train))));
    double total = 0;
    for (std::int64_t i = 0; i < options_.eval_iters; ++i) {
      const auto [x, y] = data_.sample(split, options_.batch_size, block, windows);
      total += model_.loss(x, y).item();
    }
    (split == TokenStream::Split::Train ? record.train_loss : record.validation_loss) =
        total / static_cast<double>(options_.eval_iters);
  }
  model_.train(was_training);
  return record;
}

double LanguageModelTrainer::step(std::int64_t iteration) {
  if (schedule_) optimizer_.set_learning_rate(schedule_->learning_rate(iteration));
  const std::int64_t block = model_.config().block_size;
  const double share = 1.0 / static_cast<double>(options_.gradient_accumulation);
  double loss_sum = 0;
  for (std::int64_t micro = 0; micro < options_.gradient_accumulation; ++micro) {
    const auto [x, y] =
        data_.sample(TokenStream::Split::Train, options_.batch_size, block, batches_);
    const double value = sharded_->loss_backward(x, y, share);
    if (!std::isfinite(value))
      throw Error(fmt::format(
          "iteration {}: the training loss is {}; lower the learning rate or check the data "
          "(the parameters were not updated for this iteration)",
          iteration, value));
    loss_sum += value;
  }
  if (options_.clip_grad_norm > 0) clip_grad_norm(model_.parameters(), options_.clip_grad_norm);
  optimizer_.step();
  optimizer_.zero_grad();
  return loss_sum * share;
}

const std::vector<LanguageModelRecord>& LanguageModelTrainer::fit() {
  if (options_.resume) load_checkpoint();
  model_.train();
  const auto write_metrics = [&](const LanguageModelRecord& record) {
    if (options_.output_dir.empty()) return;
    std::ofstream metrics(options_.output_dir / "metrics.jsonl", std::ios::app);
    metrics << record.to_json().dump() << "\n";
  };
  if (!options_.output_dir.empty()) {
    std::filesystem::create_directories(options_.output_dir);
    if (!options_.resume) std::filesystem::remove(options_.output_dir / "metrics.jsonl");
  }
  double logged_loss = 0;
  std::int64_t logged_steps = 0;
  for (;; ++iteration_) {
    const bool estimated = !history_.empty() && history_.back().iteration == iteration_;
    if (!estimated &&
        (iteration_ % options_.eval_every == 0 || iteration_ == options_.iterations)) {
      history_.push_back(estimate(iteration_));
      const LanguageModelRecord& r = history_.back();
      out_ << fmt::format("iter {}: train loss {:.4f}, val loss {:.4f}\n", r.iteration,
                          r.train_loss, r.validation_loss)
           << std::flush;
      write_metrics(r);
      if (!options_.output_dir.empty()) save_checkpoint();
    }
    if (iteration_ >= options_.iterations) break;
    const auto start = std::chrono::steady_clock::now();
    logged_loss += step(iteration_);
    const double seconds = seconds_since(start);
    train_seconds_ += seconds;
    session_seconds_ += seconds;
    ++session_steps_;
    ++logged_steps;
    if (options_.log_every > 0 && (iteration_ + 1) % options_.log_every == 0) {
      out_ << fmt::format("iter {}: loss {:.4f}, lr {:.3g}, {:.1f} ms/iter\n", iteration_ + 1,
                          logged_loss / static_cast<double>(logged_steps),
                          optimizer_.learning_rate(), milliseconds_per_iteration())
           << std::flush;
      logged_loss = 0;
      logged_steps = 0;
    }
  }
  model_.eval();
  return history_;
}

void LanguageModelTrainer::save_checkpoint() const {
  nlohmann::json history = nlohmann::json::array();
  for (const LanguageModelRecord& r : history_) history.push_back(r.to_json());
  detail::write_checkpoint(checkpoint_path(options_.output_dir), model_, optimizer_,
                           {{"iteration", iteration_},
                            {"history", history},
                            {"train_seconds", train_seconds_},
                            {"batches", detail::generator_to_json(batches_.state())},
                            {"generator", detail::generator_to_json(default_generator().state())}},
                           options_.run_identity);
}

void LanguageModelTrainer::load_checkpoint() {
  const auto path = checkpoint_path(options_.output_dir);
  detail::read_checkpoint(
      path, model_, optimizer_, options_.run_identity, [this](const nlohmann::json& state) {
        history_.clear();
        for (const auto& r : state.at("history"))
          history_.push_back(LanguageModelRecord::from_json(r));
        iteration_ = state.at("iteration").get<std::int64_t>();
        train_seconds_ = state.at("train_seconds").get<double>();
        batches_.set_state(detail::generator_from_json(state.at("batches")));
        default_generator().set_state(detail::generator_from_json(state.at("generator")));
      });
  out_ << fmt::format("Resumed from {} at iteration {}\n", path.string(), iteration_);
}

}  // namespace lathe
