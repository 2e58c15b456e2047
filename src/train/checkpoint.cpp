// Checkpoints: model and optimizer tensors plus the loop state (epoch, history, early-stopping
// counters, the default generator) in one safetensors file, replaced atomically each epoch.
#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <limits>

#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/random.h"
#include "lathe/train.h"
#include "src/train/checkpoint_state.h"

namespace lathe {
namespace {

constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";

}  // namespace

namespace detail {

nlohmann::json generator_to_json(const Generator::State& state) {
  return {{"s", {state.s[0], state.s[1], state.s[2], state.s[3]}},
          {"spare_normal_bits", std::bit_cast<std::uint64_t>(state.spare_normal)},
          {"has_spare", state.has_spare}};
}

Generator::State generator_from_json(const nlohmann::json& j) {
  Generator::State state{};
  for (int i = 0; i < 4; ++i) state.s[i] = j.at("s").at(i).get<std::uint64_t>();
  state.spare_normal = std::bit_cast<double>(j.at("spare_normal_bits").get<std::uint64_t>());
  state.has_spare = j.at("has_spare").get<bool>();
  return state;
}

namespace {

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

}  // namespace

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

}  // namespace detail

void Trainer::save_checkpoint() const {
  nlohmann::json history = nlohmann::json::array();
  for (const EpochRecord& r : history_) history.push_back(r.to_json(task_));
  detail::write_checkpoint(checkpoint_path(options_.output_dir), model_, optimizer_,
                           {{"completed_epochs", history_.size()},
                            {"history", history},
                            {"best_validation_loss", std::isinf(best_validation_loss_)
                                                         ? nlohmann::json(nullptr)
                                                         : nlohmann::json(best_validation_loss_)},
                            {"epochs_without_improvement", epochs_without_improvement_},
                            {"stopped_early", stopped_early_},
                            {"generator", detail::generator_to_json(default_generator().state())}},
                           options_.run_identity);
}

void Trainer::load_checkpoint() {
  const auto path = checkpoint_path(options_.output_dir);
  detail::read_checkpoint(
      path, model_, optimizer_, options_.run_identity, [this](const nlohmann::json& state) {
        history_.clear();
        for (const auto& r : state.at("history")) history_.push_back(EpochRecord::from_json(r));
        const auto& best = state.at("best_validation_loss");
        best_validation_loss_ =
            best.is_null() ? std::numeric_limits<double>::infinity() : best.get<double>();
        epochs_without_improvement_ = state.at("epochs_without_improvement").get<std::int64_t>();
        stopped_early_ = state.at("stopped_early").get<bool>();
        default_generator().set_state(detail::generator_from_json(state.at("generator")));
      });
  out_ << fmt::format("Resumed from {} after epoch {}\n", path.string(),
                      static_cast<std::int64_t>(history_.size()) - 1);
}

}  // namespace lathe
