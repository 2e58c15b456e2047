// Checkpoints: model and optimizer tensors plus the loop state (position in the data, the
// training source's own state, history, early-stopping counters, the default generator) in one
// safetensors file, replaced atomically at every evaluation point.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

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

// A JSON value for a message: at most 80 characters of it.
std::string shown(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() <= 80 ? text : text.substr(0, 77) + "...";
}

// What differs between the run a checkpoint was written by and this one, key by key
// ("batch_size: the checkpoint has 64, this run 128"), the first three and how many in all.
std::string run_differences(const nlohmann::json& checkpoint, const nlohmann::json& run) {
  const nlohmann::json patch = nlohmann::json::diff(checkpoint, run);
  std::vector<std::string> lines;
  for (const nlohmann::json& change : patch) {
    if (lines.size() == 3) break;
    const nlohmann::json::json_pointer where(change.at("path").get<std::string>());
    std::string key = where.to_string();  // "/data/seed", or "" for the whole value
    std::replace(key.begin(), key.end(), '/', '.');
    key = key.empty() ? "the setup" : key.substr(1);
    const std::string op = change.at("op").get<std::string>();
    if (op == "add")
      lines.push_back(
          fmt::format("{}: not in the checkpoint, this run {}", key, shown(change.at("value"))));
    else if (op == "remove")
      lines.push_back(
          fmt::format("{}: the checkpoint has {}, not this run", key, shown(checkpoint[where])));
    else
      lines.push_back(fmt::format("{}: the checkpoint has {}, this run {}", key,
                                  shown(checkpoint[where]), shown(change.at("value"))));
  }
  std::string text = fmt::format("{}", fmt::join(lines, "; "));
  if (patch.size() > lines.size()) text += fmt::format(" ({} differences in all)", patch.size());
  return text;
}

// The state of the checkpoint `contents` (read from `path`), once it is known to come from this
// run's setup and optimizer. Every error names the file.
nlohmann::json resumable_state(const std::filesystem::path& path,
                               const SafetensorsContents& contents,
                               const nlohmann::json& run_identity, const std::string& optimizer) {
  const auto found = contents.metadata.find("lathe.checkpoint");
  if (found == contents.metadata.end())
    throw Error(
        fmt::format("{}: not a lathe checkpoint (no 'lathe.checkpoint' metadata)", path.string()));
  try {
    nlohmann::json state = nlohmann::json::parse(found->second);
    if (state.at("run") != run_identity)
      throw Error(fmt::format(
          "the checkpoint was written by a different model or data setup: {}; train into "
          "another trainer.output_dir, or resume with the checkpoint's settings",
          run_differences(state.at("run"), run_identity)));
    if (state.at("optimizer").get<std::string>() != optimizer)
      throw Error(fmt::format("the checkpoint used optimizer '{}', this run uses '{}'",
                              state.at("optimizer").get<std::string>(), optimizer));
    return state;
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed checkpoint state: {}", path.string(), e.what()));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: cannot resume: {}", path.string(), e.what()));
  }
}

SafetensorsContents load_checkpoint_file(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path))
    throw Error(fmt::format("resume: no checkpoint at {}", path.string()));
  return load_safetensors(path);
}

// Reads the checkpoint at `path`, refuses one from another run or optimizer, loads the model and
// optimizer from it and hands its state to `restore`. Every error names the file.
void read_checkpoint(const std::filesystem::path& path, Module& model, Optimizer& optimizer,
                     const nlohmann::json& run_identity,
                     const std::function<void(const nlohmann::json& state)>& restore) {
  const SafetensorsContents contents = load_checkpoint_file(path);
  const nlohmann::json state = resumable_state(path, contents, run_identity, optimizer.name());
  try {
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

void Trainer::save_checkpoint(const Position& position, const BatchSource& train,
                              bool mid_span) const {
  nlohmann::json history = nlohmann::json::array();
  for (const TrainingRecord& r : history_) history.push_back(r.to_json(task_));
  // "completed_epochs" and "epochs_without_improvement" keep the names of checkpoints written
  // before the trainer counted steps, which still resume.
  nlohmann::json state = {{"completed_epochs", position.pass},
                          {"batch_in_epoch", position.batch},
                          {"source", train.state()},
                          {"history", history},
                          {"best_validation_loss", std::isinf(best_validation_loss_)
                                                       ? nlohmann::json(nullptr)
                                                       : nlohmann::json(best_validation_loss_)},
                          {"epochs_without_improvement", evaluations_without_improvement_},
                          {"stopped_early", stopped_early_},
                          {"generator", default_generator().state_json()},
                          {"settings", options_.run_settings}};
  const bool one_process = !options_.processes || !options_.processes->distributed();
  if (mid_span && one_process)
    state["running_sums"] = {
        {"span", {span_loss_sum_, span_rows_, span_items_, span_train_seconds_}},
        {"log", {log_loss_sum_, log_rows_}}};
  write_checkpoint(checkpoint_path(options_.output_dir), model_, optimizer_, state,
                   options_.run_identity);
}

// A checkpoint past the end this run asks for would "finish" at once, reporting the record of an
// evaluation older than the weights it saves.
void Trainer::refuse_past_end(const std::filesystem::path& path, std::int64_t steps,
                              std::int64_t pass, std::int64_t batch) const {
  std::string where, limit;
  if (by_iterations() && steps > options_.iterations) {
    where = fmt::format("at iteration {}", steps);
    limit = fmt::format("trainer.iterations = {}", options_.iterations);
  } else if (!by_iterations() &&
             (pass > options_.epochs || (pass == options_.epochs && batch > 0))) {
    where = batch > 0 ? fmt::format("in epoch {}, after batch {}", pass, batch - 1)
                      : fmt::format("after epoch {}", pass - 1);
    limit = fmt::format("trainer.epochs = {}", options_.epochs);
  } else {
    return;
  }
  throw Error(
      fmt::format("{}: cannot resume: the checkpoint is {}, past the end of this run ({}); "
                  "ask for more, or train into another trainer.output_dir",
                  path.string(), where, limit));
}

void Trainer::check_resumable() const {
  const auto path = checkpoint_path(options_.output_dir);
  const SafetensorsContents contents = load_checkpoint_file(path);
  const nlohmann::json state =
      resumable_state(path, contents, options_.run_identity, optimizer_.name());
  try {
    const auto step = contents.tensors.find(std::string(kOptimizerPrefix) + "step");
    const std::int64_t steps =
        step == contents.tensors.end() ? 0 : static_cast<std::int64_t>(step->second.item());
    refuse_past_end(path, steps, state.at("completed_epochs").get<std::int64_t>(),
                    state.value("batch_in_epoch", std::int64_t{0}));
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed checkpoint state: {}", path.string(), e.what()));
  }
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
        if (state.contains("running_sums")) {  // written by a stop between evaluations
          const nlohmann::json& sums = state.at("running_sums");
          const auto span = sums.at("span").get<std::vector<double>>();
          const auto log = sums.at("log").get<std::vector<double>>();
          if (span.size() != 4 || log.size() != 2)
            throw Error(path.string() + ": the checkpoint's running sums are malformed");
          span_loss_sum_ = span[0];
          span_rows_ = span[1];
          span_items_ = span[2];
          span_train_seconds_ = span[3];
          log_loss_sum_ = log[0];
          log_rows_ = log[1];
        }
        // Checkpoints from before settings were kept have none to compare.
        const nlohmann::json settings = state.value("settings", options_.run_settings);
        if (settings != options_.run_settings && writes_files())
          out_ << fmt::format("Note: resuming with settings other than the checkpoint's: {}\n",
                              run_differences(settings, options_.run_settings));
      });
  refuse_past_end(path, optimizer_.steps_taken(), position.pass, position.batch);
  if (by_iterations())
    out_ << fmt::format("Resumed from {} at iteration {}\n", path.string(),
                        optimizer_.steps_taken());
  else if (position.batch > 0)
    out_ << fmt::format("Resumed from {} in epoch {}, after batch {}\n", path.string(),
                        position.pass, position.batch - 1);
  else
    out_ << fmt::format("Resumed from {} after epoch {}\n", path.string(), position.pass - 1);
}

}  // namespace lathe
