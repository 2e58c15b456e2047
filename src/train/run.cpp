// run_training: the config-driven pipeline behind `lathe train`.
#include "lathe/run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <ostream>

#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "src/tensor/blas.h"

namespace lathe {
namespace {

std::shared_ptr<TensorDataset> share(TensorDataset dataset) {
  return std::make_shared<TensorDataset>(std::move(dataset));
}

// Applies preprocessing to a dataset's inputs, keeping its targets.
std::shared_ptr<TensorDataset> preprocessed(const TensorDataset& dataset, const Preprocessing& p) {
  return std::make_shared<TensorDataset>(p.apply(dataset.inputs()), dataset.targets());
}

Preprocessing fit_preprocessing(const PreprocessConfig& config, const Tensor& training_inputs) {
  if (config.standardize) return Preprocessing::standardize(training_inputs, config.scale);
  return Preprocessing::normalize(config.scale, config.normalize_mean.value_or(0.0),
                                  config.normalize_std.value_or(1.0));
}

Augmentation augmentation_for(const AugmentConfig& c) {
  Augmentation a;
  a.crop_padding = c.random_crop_padding;
  a.crop_fill = c.fill;
  a.horizontal_flip = c.horizontal_flip;
  a.erasing = c.random_erasing;
  return a;
}

// Under mpirun, the processes on one host share its cores: each gets its share of threads, for
// OpenBLAS and lathe's pool alike, unless OPENBLAS_NUM_THREADS / LATHE_NUM_THREADS say otherwise.
int share_threads(const ProcessGroup& processes) {
  const int threads = std::max(1, hardware_threads() / processes.local_size());
  if (!std::getenv("OPENBLAS_NUM_THREADS")) detail::set_blas_threads(threads);
  if (!std::getenv("LATHE_NUM_THREADS")) set_num_threads(threads);
  return num_threads();
}

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& c,
                                          std::vector<NamedTensor> params) {
  if (c.type == "sgd")
    return std::make_unique<SGD>(
        std::move(params), SGDOptions{c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov});
  const AdamOptions options{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay};
  if (c.type == "adamw") return std::make_unique<AdamW>(std::move(params), options);
  return std::make_unique<Adam>(std::move(params), options);
}

std::shared_ptr<const LRSchedule> make_schedule(const ScheduleConfig& c, double base,
                                                std::int64_t total_steps) {
  if (c.type == "step") return std::make_shared<StepLR>(base, c.step_size, c.gamma);
  if (c.type == "cosine")
    return std::make_shared<CosineWarmupLR>(base, c.warmup_steps, total_steps, c.min_lr);
  return nullptr;
}

LossFunction loss_for(const std::string& loss_name, double label_smoothing) {
  if (label_smoothing != 0 && loss_name != "cross_entropy")
    throw Error(fmt::format("label smoothing {} needs loss cross_entropy, not {}", label_smoothing,
                            loss_name));
  if (loss_name == "cross_entropy")
    return [label_smoothing](const Tensor& prediction, const Tensor& target) {
      return cross_entropy(prediction, target, Tensor(), label_smoothing);
    };
  if (loss_name == "mse")
    return [](const Tensor& prediction, const Tensor& target) {
      const bool column = prediction.dim() == 2 && prediction.size(1) == 1 && target.dim() == 1;
      return mse_loss(column ? reshape(prediction, {-1}) : prediction, target);
    };
  throw Error(fmt::format("unknown loss '{}'; known: cross_entropy, mse", loss_name));
}

PreparedData prepare_data(const RunConfig& config) {
  const DataConfig& d = config.data;
  PreparedData out;
  out.task = config.loss == "mse" ? Task::Regression : Task::Classification;
  TensorDataset train_all(Tensor::zeros({0}), Tensor::zeros({0}));
  std::shared_ptr<TensorDataset> test;
  nlohmann::json info = {{"format", d.format}};
  if (d.format == "idx") {
    train_all = TensorDataset(read_idx(d.train_images), read_idx_labels(d.train_labels));
    test = share(TensorDataset(read_idx(d.test_images), read_idx_labels(d.test_labels)));
  } else if (d.format == "mnist_json") {
    const LabeledImages digits = read_mnist_json_digits(d.dir);
    auto [train_part, test_part] =
        random_split(TensorDataset(digits.images, digits.labels), d.test_fraction, d.seed);
    train_all = std::move(train_part);
    test = share(std::move(test_part));
  } else {
    const CsvTable table = read_csv(d.path, d.target);
    auto [train_part, test_part] =
        random_split(TensorDataset(table.features, table.targets), d.test_fraction, d.seed);
    train_all = std::move(train_part);
    test = share(std::move(test_part));
    info["target"] = table.target_name;
    info["features"] = table.feature_names;
  }
  if (out.task == Task::Classification && train_all.targets().dtype() != DType::Int64)
    throw Error(
        fmt::format("loss cross_entropy needs class labels, but data format \"{}\" gives "
                    "numeric targets; use loss type = \"mse\"",
                    d.format));
  if (out.task == Task::Regression && train_all.targets().dtype() == DType::Int64)
    throw Error(
        "loss mse needs numeric targets, but the data gives class labels; use cross_entropy");
  auto [train, validation] = random_split(train_all, d.validation_fraction, d.seed + 1);
  out.preprocessing = fit_preprocessing(config.preprocess, train.inputs());
  out.train = preprocessed(train, out.preprocessing);
  out.validation = preprocessed(validation, out.preprocessing);
  out.test = preprocessed(*test, out.preprocessing);
  const Shape& input_shape = train.inputs().shape();
  info["task"] = out.task == Task::Classification ? "classification" : "regression";
  info["loss"] = config.loss;
  info["input_shape"] = Shape(input_shape.begin() + 1, input_shape.end());
  if (!d.class_names.empty()) info["classes"] = d.class_names;
  out.task_info = info;
  return out;
}

RunResult run_training(const RunConfig& config, bool resume, std::ostream& console) {
  if (config.model_type != "layers")
    throw Error(
        fmt::format("run_training: [model] type \"{}\" trains with "
                    "run_language_model_training (lathe/lm_train.h)",
                    config.model_type));
  const TrainerConfig& t = config.trainer;
  ProcessGroup& processes = ProcessGroup::world();
  std::ostream discard(nullptr);  // the other ranks' log: rank 0 speaks for the job
  std::ostream& out = processes.rank() == 0 ? console : discard;
  if (processes.distributed())
    out << fmt::format(
        "Distributed: {} processes ({} on this host, threads per process: {}); each trains on "
        "1/{} of every batch of {}\n",
        processes.size(), processes.local_size(), share_threads(processes), processes.size(),
        t.batch_size);
  manual_seed(t.seed);
  PreparedData data = prepare_data(config);
  out << fmt::format("Data: {} training, {} validation, {} test examples\n", data.train->size(),
                     data.validation->size(), data.test->size());

  Generator init(t.seed);
  const std::shared_ptr<Sequential> model = make_sequential(config.layers, init);
  out << fmt::format("Model: {} layers, {} parameters\n", model->size(), model->parameter_count());
  std::unique_ptr<Optimizer> optimizer =
      make_optimizer(config.optimizer, model->named_parameters());

  const bool prefetch = background_prefetch_pays(processes.local_size());
  DataLoader train_loader(data.train,
                          {t.batch_size, t.shuffle, t.drop_last, t.seed, prefetch, processes.rank(),
                           processes.size(), augmentation_for(config.augment)});
  const std::int64_t total_steps = train_loader.batches_per_epoch() * t.epochs;
  std::unique_ptr<DataLoader> validation_loader;
  if (data.validation->size() > 0)
    validation_loader = std::make_unique<DataLoader>(
        data.validation, DataLoaderOptions{t.eval_batch_size, false, false, 0, prefetch});

  TrainerOptions options;
  options.epochs = t.epochs;
  options.log_every = t.log_every;
  options.output_dir = t.output_dir;
  options.early_stopping_patience = t.early_stopping_patience;
  options.clip_grad_norm = t.clip_grad_norm;
  options.resume = resume;
  options.processes = &processes;
  options.progress = t.progress == "always"  ? TrainerOptions::Progress::Always
                     : t.progress == "never" ? TrainerOptions::Progress::Never
                                             : TrainerOptions::Progress::Auto;
  // A checkpoint may only continue the same model on the same data with the same batches.
  const nlohmann::json resolved = config.to_json();
  options.run_identity = {{"layers", config.layers},
                          {"data", resolved["data"]},
                          {"preprocess", resolved["preprocess"]},
                          {"batch_size", t.batch_size},
                          {"seed", t.seed},
                          {"loss", config.loss}};
  // Only when set, so checkpoints written before these keys existed still resume.
  if (config.augment.enabled()) options.run_identity["augment"] = resolved["augment"];
  if (config.label_smoothing > 0) options.run_identity["label_smoothing"] = config.label_smoothing;
  // Validation and test measure the plain loss (as timm does), comparable across smoothing
  // settings and equal to what `lathe eval` reports for the bundle.
  const LossFunction loss = loss_for(config.loss);
  options.evaluation_loss = loss;
  Trainer trainer(*model, *optimizer, loss_for(config.loss, config.label_smoothing), data.task,
                  options, make_schedule(config.schedule, config.optimizer.lr, total_steps), out);
  RunResult result;
  result.history = trainer.fit(train_loader, validation_loader.get());
  if (processes.rank() != 0) return result;  // rank 0 tests and saves the bundle

  DataLoader train_eval_loader(data.train, {t.eval_batch_size, false, false, 0, prefetch});
  result.train = evaluate(*model, loss, data.task, train_eval_loader);
  DataLoader test_loader(data.test, {t.eval_batch_size, false, false, 0, prefetch});
  result.test = evaluate(*model, loss, data.task, test_loader);
  out << fmt::format("Test Loss = {:.6f}, {}\n", result.test.loss, result.test.describe(data.task));
  if (data.task == Task::Classification)
    out << fmt::format("Accuracy: {:.2f}%\n", 100 * result.test.accuracy);

  BundleInfo info{model->spec(), data.preprocessing, data.task_info, nlohmann::json::object()};
  info.metrics["train"] = result.train.to_json(data.task);
  info.metrics["test"] = result.test.to_json(data.task);
  if (!result.history.empty())
    info.metrics["last_epoch"] = result.history.back().to_json(data.task);
  info.metrics["epochs"] = result.history.size();
  result.bundle_path = t.output_dir / "model.safetensors";
  std::filesystem::create_directories(t.output_dir);
  save_bundle(result.bundle_path, *model, info);
  write_file_atomically(t.output_dir / "config.json", config.to_json().dump(2) + "\n");
  out << fmt::format("Saved model bundle: {}\n", result.bundle_path.string());
  return result;
}

}  // namespace lathe
