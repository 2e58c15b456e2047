// Evaluation over a loader, and the JSON form of metrics and epoch records.
#include <fmt/format.h>

#include <cmath>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/train.h"

namespace lathe {

EvaluationResult evaluate(Module& model, const LossFunction& loss, Task task, DataLoader& loader) {
  EvalModeGuard eval_mode(model);
  return evaluate([&](const Tensor& inputs) { return model(inputs); }, loss, task, loader);
}

EvaluationResult evaluate(const std::function<Tensor(const Tensor&)>& forward,
                          const LossFunction& loss, Task task, DataLoader& loader) {
  if (loader.options().augmentation.enabled())
    throw Error("evaluate: the data loader augments its batches; evaluate on one without");
  NoGradGuard no_grad;
  EvaluationResult result;
  double loss_sum = 0, correct = 0, squared_error = 0, target_sum = 0, target_square_sum = 0;
  loader.start_epoch(0);
  while (auto batch = loader.next()) {
    const Tensor prediction = forward(batch->inputs);
    const std::int64_t n = batch->targets.size(0);
    loss_sum += loss(prediction, batch->targets).item() * static_cast<double>(n);
    result.count += n;
    if (task == Task::Classification) {
      const Tensor predicted = argmax(prediction, 1);
      const std::int64_t* p = predicted.data<std::int64_t>();
      const std::int64_t* t = batch->targets.data<std::int64_t>();
      for (std::int64_t i = 0; i < n; ++i) correct += p[i] == t[i];
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
  if (task == Task::Classification) {
    result.accuracy = correct / n;
  } else {
    result.rmse = std::sqrt(squared_error / n);
    const double total = target_square_sum - target_sum * target_sum / n;
    result.r2 = total > 0 ? 1 - squared_error / total : 0;
  }
  return result;
}

nlohmann::json EvaluationResult::to_json(Task task) const {
  nlohmann::json j = {{"count", count}, {"loss", loss}};
  if (task == Task::Classification) {
    j["accuracy"] = accuracy;
  } else {
    j["rmse"] = rmse;
    j["r2"] = r2;
  }
  return j;
}

std::string EvaluationResult::describe(Task task) const {
  if (task == Task::Classification) return fmt::format("Accuracy = {:.2f}%", 100 * accuracy);
  return fmt::format("RMSE = {:.4f}, R^2 = {:.4f}", rmse, r2);
}

nlohmann::json EpochRecord::to_json(Task task) const {
  nlohmann::json j = {{"epoch", epoch},
                      {"train_loss", train_loss},
                      {"learning_rate", learning_rate},
                      {"seconds", seconds},
                      {"train_seconds", train_seconds}};
  if (has_validation) j["validation"] = validation.to_json(task);
  return j;
}

EpochRecord EpochRecord::from_json(const nlohmann::json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch").get<std::int64_t>();
  r.train_loss = j.at("train_loss").get<double>();
  r.learning_rate = j.at("learning_rate").get<double>();
  r.seconds = j.at("seconds").get<double>();
  r.train_seconds = j.value("train_seconds", 0.0);  // absent in checkpoints before it existed
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
