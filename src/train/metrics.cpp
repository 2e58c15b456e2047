// Evaluation over a batch source, and the JSON form of metrics and training records.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/train.h"

namespace lathe {

EvaluationResult evaluate(Module& model, const LossFunction& loss, Task task, BatchSource& source,
                          std::int64_t pass) {
  EvalModeGuard eval_mode(model);
  return evaluate([&](const Tensor& inputs) { return model(inputs); }, loss, task, source, pass);
}

EvaluationResult evaluate(const std::function<Tensor(const Tensor&)>& forward,
                          const LossFunction& loss, Task task, BatchSource& source,
                          std::int64_t pass) {
  if (const auto* loader = dynamic_cast<const DataLoader*>(&source);
      loader && loader->options().augmentation.enabled())
    throw Error("evaluate: the data loader augments its batches; evaluate on one without");
  if (source.batches_per_epoch() == 0)
    throw Error("evaluate: the batch source is endless; give it a number of batches per pass");
  NoGradGuard no_grad;
  EvaluationResult result;
  double loss_sum = 0, correct = 0, predicted_count = 0, squared_error = 0, target_sum = 0,
         target_square_sum = 0;
  source.start_epoch(pass);
  while (auto batch = source.next()) {
    const Tensor prediction = forward(batch->inputs);
    const std::int64_t n = batch->targets.size(0);
    loss_sum += loss(prediction, batch->targets).item() * static_cast<double>(n);
    result.count += n;
    if (task != Task::Regression) {
      // Class scores [N, C], or a language model's [N, T, vocab] for targets [N, T].
      const std::int64_t classes = prediction.size(-1);
      const Tensor predicted = argmax(reshape(prediction, {-1, classes}), 1);
      const std::int64_t* p = predicted.data<std::int64_t>();
      const std::int64_t* t = batch->targets.data<std::int64_t>();
      if (predicted.numel() != batch->targets.numel())
        throw Error(fmt::format("evaluate: {} predictions for {} targets", predicted.numel(),
                                batch->targets.numel()));
      for (std::int64_t i = 0; i < predicted.numel(); ++i) correct += p[i] == t[i];
      predicted_count += static_cast<double>(predicted.numel());
    } else {
      const auto p = prediction.to_vector();
      const auto t = batch->targets.to_vector();
      if (p.size() != t.size())
        throw Error(fmt::format("evaluate: {} predictions for {} targets", p.size(), t.size()));
      for (std::size_t i = 0; i < p.size(); ++i) {
        squared_error += (p[i] - t[i]) * (p[i] - t[i]);
        target_sum += t[i];
        target_square_sum += t[i] * t[i];
      }
    }
  }
  if (result.count == 0) throw Error("evaluate: the data set is empty");
  const auto n = static_cast<double>(result.count);
  result.loss = loss_sum / n;
  if (task != Task::Regression) {
    result.accuracy = correct / predicted_count;
  } else {
    result.rmse = std::sqrt(squared_error / n);
    const double total = target_square_sum - target_sum * target_sum / n;
    result.r2 = total > 0 ? 1 - squared_error / total : 0;
  }
  return result;
}

nlohmann::json EvaluationResult::to_json(Task task) const {
  nlohmann::json j = {{"count", count}, {"loss", loss}};
  if (task != Task::Regression) {
    j["accuracy"] = accuracy;
  } else {
    j["rmse"] = rmse;
    j["r2"] = r2;
  }
  return j;
}

std::string EvaluationResult::describe(Task task) const {
  if (task == Task::LanguageModel)
    return fmt::format("Perplexity = {:.3f}, Next-token accuracy = {:.2f}%", std::exp(loss),
                       100 * accuracy);
  if (task == Task::Classification) return fmt::format("Accuracy = {:.2f}%", 100 * accuracy);
  return fmt::format("RMSE = {:.4f}, R^2 = {:.4f}", rmse, r2);
}

nlohmann::json TrainingRecord::to_json(Task task) const {
  nlohmann::json j = {
      {"step", step},
      {"epoch", epoch},
      {"learning_rate", learning_rate},
      {"seconds", seconds},
      {"train_seconds", train_seconds},
      {task == Task::LanguageModel ? "tokens_per_second" : "examples_per_second", items_per_second},
      {"time", time}};
  if (!std::isnan(train_loss)) j["train_loss"] = train_loss;
  if (has_validation) j["validation"] = validation.to_json(task);
  return j;
}

TrainingRecord TrainingRecord::from_json(const nlohmann::json& j) {
  TrainingRecord r;
  // Checkpoints from before steps were counted have no "step" (nor these throughput fields).
  r.step = j.value("step", std::int64_t{0});
  r.epoch = j.at("epoch").get<std::int64_t>();
  r.train_loss = j.value("train_loss", std::numeric_limits<double>::quiet_NaN());
  r.learning_rate = j.at("learning_rate").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.train_seconds = j.value("train_seconds", 0.0);
  r.items_per_second = j.value("examples_per_second", j.value("tokens_per_second", 0.0));
  r.time = j.value("time", 0.0);
  if (j.contains("validation")) {
    const auto& v = j["validation"];
    r.has_validation = true;
    r.validation.count = v.at("count").get<std::int64_t>();
    r.validation.loss = v.at("loss").get<double>();
    r.validation.accuracy = v.value("accuracy", 0.0);
    r.validation.rmse = v.value("rmse", 0.0);
    r.validation.r2 = v.value("r2", 0.0);
  }
  return r;
}

}  // namespace lathe
