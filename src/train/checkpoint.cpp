// Checkpoints: model and optimizer tensors plus the loop state (position in the data, the
// training source's own state, history, early-stopping counters, the default generator) in one
// safetensors file, replaced atomically at every evaluation point.
#include <fmt/format.h>

#include <cmath>
#include <functional>
#include <limits>

#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/random.h"
#include "lathe/train.h"

namespace lathe {
namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";

std::map<std::string, Tensor> with_prefix(const std::map<std::string, Tensor>& tensors,
                                          const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, tensor] : tensors) out[prefix + name] = tensor;
  return out;
}

std::map<std::string, Tensor> strip_prefix(const std::map<std::string, Tensor>& tensors,
                                           const std::string& prefix) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, tensor] : tensors)
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = tensor;
  return out;
}

// Writes the model's and the optimizer's tensors and `state`, with the optimizer's name and the
// run identity added to it, to `path` atomically.
void write_checkpoint(const std::filesystem::path& path, const Module& model,
                      const Optimizer& optimizer, nlohmann::json state,
                      const nlohmann::json& run_identity) {
  std::map<std::string, Tensor> tensors = with_prefix(model.state_dict(), kModelPrefix);
  tensors.merge(with_prefix(optimizer.state(), kOptimizerPrefix));
  state["optimizer"] = optimizer.name();
  state["run"] = run_identity;
  save_safetensors(path, tensors,
                   {{"format", "lathe.checkpoint/1"}, {"lathe.checkpoint", state.dump()}});
}

// Reads the checkpoint at `path`, refuses one from another run or optimizer, loads the model and
// optimizer from it and hands its state to `restore`. Every error names the file.
void read_checkpoint(const std::filesystem::path& path, Module& model, Optimizer& optimizer,
                     const nlohmann::json& run_identity,
                     const std::function<void(const nlohmann::json& state)>& restore) {
  if (!std::filesystem::exists(path))
    throw Error(fmt::format("resume: no checkpoint at {}", path.string()));
  const SafetensorsContents contents = load_safetensors(path);
  const auto found = contents.metadata.find("lathe.checkpoint");
  if (found == contents.metadata.end())
    throw Error(
        fmt::format("{}: not a lathe checkpoint (no 'lathe.checkpoint' metadata)", path.string()));
  try {
    const nlohmann::json state = nlohmann::json::parse(found->second);
    if (state.at("run") != run_identity)
      throw Error(
          fmt::format("the checkpoint was written by a different model or data setup; "
                      "it has {} but this run is {}",
                      state.at("run").dump(), run_identity.dump()));
    if (state.at("optimizer").get<std::string>() != optimizer.name())
      throw Error(fmt::format("the checkpoint used optimizer '{}', this run uses '{}'",
                              state.at("optimizer").get<std::string>(), optimizer.name()));
    model.load_state_dict(strip_prefix(contents.tensors, kModelPrefix));
    optimizer.load_state(strip_prefix(contents.tensors, kOptimizerPrefix));
    restore(state);
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed checkpoint state: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot resume: {}", path.string(), e.what()));
  }
}

}  // namespace

void Trainer::save_checkpoint(const Position& position, const BatchSource& train) const {
  nlohmann::json history = nlohmann::json::array();
  for (const TrainingRecord& r : history_) history.push_back(r.to_json(task_));
  // "completed_epochs" and "epochs_without_improvement" keep the names of checkpoints written
  // before the trainer counted steps, which still resume.
  write_checkpoint(checkpoint_path(options_.output_dir), model_, optimizer_,
                   {{"completed_epochs", position.pass},
                    {"batch_in_epoch", position.batch},
                    {"source", train.state()},
                    {"history", history},
                    {"best_validation_loss", std::isinf(best_validation_loss_)
                                                 ? nlohmann::json(nullptr)
                                                 : nlohmann::json(best_validation_loss_)},
                    {"epochs_without_improvement", evaluations_without_improvement_},
                    {"stopped_early", stopped_early_},
                    {"generator", default_generator().state_json()}},
                   options_.run_identity);
}

void Trainer::load_checkpoint(Position& position, BatchSource&) {
  const auto path = checkpoint_path(options_.output_dir);
  read_checkpoint(
      path, model_, optimizer_, options_.run_identity, [&](const nlohmann::json& state) {
        history_.clear();
        for (const auto& r : state.at("history")) history_.push_back(TrainingRecord::from_json(r));
        position.pass = state.at("completed_epochs").get<std::int64_t>();
        position.batch = state.value("batch_in_epoch", std::int64_t{0});
        position.source_state = state.value("source", nlohmann::json(nullptr));
        const auto& best = state.at("best_validation_loss");
        best_validation_loss_ =
            best.is_null() ? std::numeric_limits<double>::infinity() : best.get<double>();
        evaluations_without_improvement_ =
            state.at("epochs_without_improvement").get<std::int64_t>();
        stopped_early_ = state.at("stopped_early").get<bool>();
        default_generator().set_state_json(state.at("generator"));
      });
  if (by_iterations())
    out_ << fmt::format("Resumed from {} at iteration {}\n", path.string(),
                        optimizer_.steps_taken());
  else
    out_ << fmt::format("Resumed from {} after epoch {}\n", path.string(), position.pass - 1);
}

}  // namespace lathe
