// run_training: the config-driven pipeline behind `lathe train`, for every model and data kind.
#include "lathe/run.h"

#include <fmt/format.h>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <numeric>
#include <optional>
#include <ostream>

#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/parallel.h"
#include "lathe/table.h"
#include "src/io/file_bytes.h"
#include "src/tensor/blas.h"
#include "src/tensor/gemm_bf16.h"
#include "src/train/unix_time.h"

namespace lathe {
namespace {

// A dataset's examples through the preprocessing, the targets kept: float32 inputs in place
// where the dataset was their only holder; images kept as bytes map each batch as it is drawn.
std::shared_ptr<const Dataset> preprocessed(TensorDataset dataset, const Preprocessing& p) {
  Tensor targets = dataset.targets();
  return std::make_shared<TensorDataset>(p.apply(std::move(dataset).inputs()), std::move(targets));
}

std::shared_ptr<const Dataset> preprocessed(const ByteImageDataset& dataset,
                                            const Preprocessing& p) {
  return std::make_shared<ByteImageDataset>(dataset.with_preprocessing(p));
}

Tensor all_inputs(const TensorDataset& dataset) {
  return dataset.inputs();
}

Tensor all_inputs(const ByteImageDataset& dataset) {
  std::vector<std::int64_t> rows(static_cast<std::size_t>(dataset.size()));
  std::iota(rows.begin(), rows.end(), 0);
  return dataset.get_batch(rows).inputs;
}

// Standardizing reads every training input as float32; normalizing reads none.
template <class Examples>
Preprocessing fit_preprocessing(const PreprocessConfig& config, const Examples& training) {
  if (config.standardize) return Preprocessing::standardize(all_inputs(training), config.scale);
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
  std::unique_ptr<Optimizer> optimizer;
  if (c.type == "sgd") {
    optimizer = std::make_unique<SGD>(
        std::move(params), SGDOptions{c.lr, c.momentum, c.dampening, c.weight_decay, c.nesterov});
  } else {
    const AdamOptions options{c.lr, c.beta1, c.beta2, c.eps, c.weight_decay};
    if (c.type == "adamw")
      optimizer = std::make_unique<AdamW>(std::move(params), options);
    else
      optimizer = std::make_unique<Adam>(std::move(params), options);
  }
  if (c.decay_matrices_only)
    optimizer->exempt_from_weight_decay([](const NamedTensor& p) { return p.tensor.dim() < 2; });
  return optimizer;
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
      if (prediction.dim() <= 2)
        return cross_entropy(prediction, target, Tensor(), label_smoothing);
      // Scores per position ([N, T, C], a language model's) for targets [N, T].
      return cross_entropy(reshape(prediction, {-1, prediction.size(-1)}),
                           reshape(target, {target.numel()}), Tensor(), label_smoothing);
    };
  if (loss_name == "mse")
    return [](const Tensor& prediction, const Tensor& target) {
      const bool column = prediction.dim() == 2 && prediction.size(1) == 1 && target.dim() == 1;
      return mse_loss(column ? reshape(prediction, {-1}) : prediction, target);
    };
  throw Error(fmt::format("unknown loss '{}'; known: cross_entropy, mse", loss_name));
}

namespace {

std::unique_ptr<Tokenizer> train_tokenizer(const DataConfig& d, std::string_view corpus) {
  if (d.tokenizer == "char") return std::make_unique<CharTokenizer>(CharTokenizer::train(corpus));
  // BPE merges are learned from the training part of the text only.
  const auto training_bytes =
      static_cast<std::size_t>(static_cast<double>(corpus.size()) * (1.0 - d.validation_fraction));
  return std::make_unique<BpeTokenizer>(
      BpeTokenizer::train(corpus.substr(0, training_bytes), d.vocab_size));
}

// Text: the corpus, a tokenizer trained on it, the token stream split for training and
// validation (no test split: a language model is judged by its validation loss).
PreparedData prepare_text(const RunConfig& config) {
  const DataConfig& d = config.data;
  PreparedData out;
  out.task = Task::LanguageModel;
  const std::string corpus = read_text_corpus(d.path);
  out.tokenizer = train_tokenizer(d, corpus);
  out.tokens =
      std::make_shared<const TokenStream>(out.tokenizer->encode(corpus), d.validation_fraction);
  out.task_info = {{"task", "language_model"}, {"tokenizer", out.tokenizer->to_json()}};
  std::size_t first = corpus.empty() ? 0 : 1;  // the first character, all its UTF-8 bytes
  while (first < corpus.size() && (static_cast<unsigned char>(corpus[first]) & 0xC0) == 0x80)
    ++first;
  out.sample_prompt = corpus.substr(0, first);
  out.model_arguments = {{"vocab_size", out.tokenizer->vocab_size()}};
  out.summary = fmt::format(
      "Data: {} bytes of text, {} tokenizer with {} tokens; {} training, {} validation tokens",
      corpus.size(), out.tokenizer->kind(), out.tokenizer->vocab_size(),
      out.tokens->size(TokenStream::Split::Train),
      out.tokens->size(TokenStream::Split::Validation));
  return out;
}

// The model of the [model] spec, with what the data decides filled in where the spec is silent.
std::shared_ptr<Module> build_model(const RunConfig& config, const PreparedData& data,
                                    Generator& init) {
  nlohmann::json spec = config.model;
  for (const auto& [key, value] : data.model_arguments.items())
    if (spec["type"] != "sequential" && !spec.contains(key)) spec[key] = value;
  return make_layer(spec, init);
}

std::string describe_model(const Module& model) {
  if (const auto* sequential = dynamic_cast<const Sequential*>(&model))
    return fmt::format("Model: {} layers, {} parameters", sequential->size(),
                       model.parameter_count());
  nlohmann::json arguments = model.spec();
  arguments.erase("type");
  std::vector<std::string> parts;
  for (const auto& [key, value] : arguments.items())
    parts.push_back(key + " " + layer_argument_text(value));
  return fmt::format("Model: {} ({}), {} parameters", model.type(), fmt::join(parts, ", "),
                     model.parameter_count());
}

// A checkpoint may only continue the same model on the same data with the same batches. The
// keys of a layer model's identity are those of checkpoints written before the trainer was one,
// so those still resume.
nlohmann::json run_identity(const RunConfig& config, const PreparedData& data) {
  const nlohmann::json resolved = config.to_json();
  const TrainerConfig& t = config.trainer;
  nlohmann::json identity = {
      {"data", resolved["data"]}, {"batch_size", t.batch_size}, {"seed", t.seed}};
  if (config.model["type"] == "sequential") {
    identity["layers"] = config.model["layers"];
    identity["preprocess"] = resolved["preprocess"];
    identity["loss"] = config.loss;
  } else {
    identity["model"] = config.model;
  }
  if (data.tokenizer) identity["tokenizer"] = data.tokenizer->to_json();
  if (t.gradient_accumulation != 1) identity["gradient_accumulation"] = t.gradient_accumulation;
  // Only when set, so checkpoints written before these keys existed still resume.
  if (config.augment.enabled()) identity["augment"] = resolved["augment"];
  if (config.label_smoothing > 0) identity["label_smoothing"] = config.label_smoothing;
  return identity;
}

TrainerOptions trainer_options(const RunConfig& config, ProcessGroup& processes, bool resume) {
  const TrainerConfig& t = config.trainer;
  TrainerOptions options;
  options.epochs = t.epochs;
  options.iterations = t.iterations;
  options.eval_every = t.eval_every;
  options.gradient_accumulation = t.gradient_accumulation;
  options.log_every = t.log_every;
  options.shards = t.shards;
  options.output_dir = t.output_dir;
  options.early_stopping_patience = t.early_stopping_patience;
  options.clip_grad_norm = t.clip_grad_norm;
  options.resume = resume;
  options.processes = &processes;
  // Under mpirun a rank's stdout is a terminal of mpirun's making even when mpirun's own output
  // goes to a file, so "auto" draws no bar there.
  options.progress = t.progress == "always" ? TrainerOptions::Progress::Always
                     : t.progress == "never" || processes.distributed()
                         ? TrainerOptions::Progress::Never
                         : TrainerOptions::Progress::Auto;
  return options;
}

// What a run trains on and is judged by: batch sources over the prepared data.
struct Sources {
  std::unique_ptr<BatchSource> train, validation, train_estimate, test, train_evaluation;
};

Sources make_sources(const RunConfig& config, const PreparedData& data,
                     const ProcessGroup& processes) {
  const TrainerConfig& t = config.trainer;
  Sources s;
  if (data.tokens) {
    const std::int64_t block = config.model.value("block_size", std::int64_t{0});
    if (block < 1)
      throw Error(
          fmt::format("[model] type '{}' gives no block_size, the window length text "
                      "trains on",
                      config.model["type"].get<std::string>()));
    const auto windows = [&](TokenStream::Split split, std::int64_t per_pass, int shard,
                             int shards) {
      return std::make_unique<TokenWindows>(
          data.tokens, split,
          TokenWindows::Options{t.batch_size, block, t.seed, per_pass, shard, shards});
    };
    s.train = windows(TokenStream::Split::Train, 0, processes.rank(), processes.size());
    s.validation = windows(TokenStream::Split::Validation, t.eval_iters, 0, 1);
    s.train_estimate = windows(TokenStream::Split::Train, t.eval_iters, 0, 1);
    return s;
  }
  const bool prefetch = background_prefetch_pays(processes.local_size());
  s.train = std::make_unique<DataLoader>(
      data.train,
      DataLoaderOptions{t.batch_size, t.shuffle, t.drop_last, t.seed, prefetch, processes.rank(),
                        processes.size(), augmentation_for(config.augment)});
  const auto evaluation = [&](const std::shared_ptr<const Dataset>& dataset) {
    return std::make_unique<DataLoader>(
        dataset, DataLoaderOptions{t.eval_batch_size, false, false, 0, prefetch});
  };
  if (data.validation->size() > 0) s.validation = evaluation(data.validation);
  s.test = evaluation(data.test);
  s.train_evaluation = evaluation(data.train);
  return s;
}

// status.json in the run folder: what `lathe board` shows of a run, rewritten atomically at the
// start (running, with the process id and host, which the board checks) and at the end
// (finished, failed with the error, or stopped).
class RunStatus {
 public:
  explicit RunStatus(std::filesystem::path output_dir) : path_(std::move(output_dir)) {
    std::array<char, 256> host{};
    ::gethostname(host.data(), host.size() - 1);
    status_ = {{"status", "running"},
               {"pid", static_cast<std::int64_t>(::getpid())},
               {"host", std::string(host.data())},
               {"started", detail::unix_time()}};
    write();
  }
  void finish(const std::string& status, const std::string& message = {}) {
    status_["status"] = status;
    status_["finished"] = detail::unix_time();
    if (!message.empty()) status_["message"] = message;
    write();
  }

 private:
  void write() const { write_file_atomically(path_ / "status.json", status_.dump(2) + "\n"); }
  std::filesystem::path path_;
  nlohmann::json status_;
};

// A taste of what a language model learned: 200 tokens after the corpus's first character.
std::string sample_text(CausalLanguageModel& model, const PreparedData& data, std::uint64_t seed) {
  const std::string& start = data.sample_prompt;
  return start + data.tokenizer->decode(
                     generate(model, data.tokenizer->encode(start), 200, {0.8, 0, seed}));
}

// The shape of one example as the model gets it, from the data's header where it has one, before
// the data loads; nothing where only reading the data tells (a CSV's encoded columns).
std::optional<Shape> peek_example_shape(const RunConfig& config) {
  const DataConfig& d = config.data;
  if (d.format == "idx") {
    const std::optional<Shape> images = peek_idx_shape(d.train_images);
    if (!images || images->empty()) return std::nullopt;
    return Shape(images->begin() + 1, images->end());
  }
  if (d.format == "mnist_json") return Shape{784};
  if (d.format == "text") {
    const std::int64_t block = config.model.value("block_size", std::int64_t{0});
    if (block > 0) return Shape{block};
  }
  return std::nullopt;
}

// Trains, then (rank 0) tests the examples or reports a language model's last estimate, and
// saves the bundle.
RunResult train_test_and_save(const RunConfig& config, const PreparedData& data, Module& model,
                              Trainer& trainer, Sources& sources, std::ostream& out) {
  const TrainerConfig& t = config.trainer;
  ProcessGroup& processes = ProcessGroup::world();
  const LossFunction loss = loss_for(config.loss);
  RunResult result;
  result.history =
      trainer.fit(*sources.train, sources.validation.get(), sources.train_estimate.get());
  result.milliseconds_per_step = trainer.milliseconds_per_step();
  if (processes.rank() != 0) return result;  // rank 0 tests and saves the bundle

  BundleInfo info{model.spec(), data.preprocessing, data.task_info, nlohmann::json::object()};
  if (data.tokens) {
    const TrainingRecord& last = result.history.back();
    // No speed when this process ran no step (a resume of a run stopped at its last step).
    const bool timed = result.milliseconds_per_step > 0;
    out << fmt::format(
        "Final: train loss {:.4f}, val loss {:.4f}{}\n", last.train_loss, last.validation.loss,
        timed ? fmt::format("; {:.1f} ms/iteration", result.milliseconds_per_step) : std::string());
    info.metrics.update({{"iterations", last.step},
                         {"train_loss", last.train_loss},
                         {"validation_loss", last.validation.loss}});
    if (timed) info.metrics["ms_per_iteration"] = result.milliseconds_per_step;
  } else {
    result.train = evaluate(model, loss, data.task, *sources.train_evaluation);
    result.test = evaluate(model, loss, data.task, *sources.test);
    out << fmt::format("Test Loss = {:.6f}, {}\n", result.test.loss,
                       result.test.describe(data.task));
    if (data.task == Task::Classification)
      out << fmt::format("Accuracy: {:.2f}%\n", 100 * result.test.accuracy);
    info.metrics["train"] = result.train.to_json(data.task);
    info.metrics["test"] = result.test.to_json(data.task);
    // A run for iterations evaluates every eval_every steps: its history counts evaluations,
    // not epochs.
    const bool by_iterations = t.iterations > 0;
    if (!result.history.empty())
      info.metrics[by_iterations ? "last_evaluation" : "last_epoch"] =
          result.history.back().to_json(data.task);
    if (by_iterations)
      info.metrics["iterations"] = t.iterations;
    else
      info.metrics["epochs"] = result.history.size();
  }
  result.bundle_path = t.output_dir / "model.safetensors";
  std::filesystem::create_directories(t.output_dir);
  save_bundle(result.bundle_path, model, info);
  out << fmt::format("Saved model bundle: {}\n", result.bundle_path.string());
  if (data.tokens)
    if (auto* language_model = dynamic_cast<CausalLanguageModel*>(&model)) {
      result.sample = sample_text(*language_model, data, t.seed);
      out << "Sample:\n" << result.sample << "\n";
    }
  return result;
}

// Preprocessing fitted on the training split and applied to the three splits; the task info
// and the "Data:" line.
template <class Examples>
void finish_examples(const RunConfig& config, PreparedData& out, Examples train,
                     Examples validation, Examples test, nlohmann::json& info) {
  const DataConfig& d = config.data;
  out.preprocessing = fit_preprocessing(config.preprocess, train);
  const Shape example_shape = train.example_shape();
  out.train = preprocessed(std::move(train), out.preprocessing);
  out.validation = preprocessed(std::move(validation), out.preprocessing);
  out.test = preprocessed(std::move(test), out.preprocessing);
  info["task"] = task_name(out.task);
  info["loss"] = config.loss;
  info["input_shape"] = example_shape;
  if (!d.class_names.empty()) info["classes"] = d.class_names;
  out.task_info = info;
  out.summary = fmt::format("Data: {} training, {} validation, {} test examples", out.train->size(),
                            out.validation->size(), out.test->size());
}

// Names for a message: the first 20, then how many in all.
std::string first_names(const std::vector<std::string>& names) {
  constexpr std::size_t kShown = 20;
  if (names.size() <= kShown) return fmt::format("{}", fmt::join(names, ", "));
  return fmt::format("{}, ... ({} in all)", fmt::join(names.begin(), names.begin() + kShown, ", "),
                     names.size());
}

TableOptions table_options(const DataConfig& d, bool classification) {
  TableOptions o;
  o.target = d.target;
  o.classification = classification;
  o.class_names = d.class_names;
  o.categorical = d.categorical;
  o.drop = d.drop;
  o.missing_values = d.missing_values;
  o.impute = d.impute;
  o.impute_categorical = d.impute_categorical;
  o.impute_columns = d.impute_columns;
  o.fill_value = d.fill_value;
  o.fill_category = d.fill_category;
  o.missing_indicator = d.missing_indicator;
  o.missing_indicator_columns = d.missing_indicator_columns;
  o.unknown_category = d.unknown_category;
  return o;
}

// A CSV table: cells read as text, split by rows, the encoding (columns to features, labels to
// classes) fitted on the training rows, recorded in the bundle with how the rows were split.
PreparedData prepare_table(const RunConfig& config) {
  const DataConfig& d = config.data;
  PreparedData out;
  out.task = config.loss == "mse" ? Task::Regression : Task::Classification;
  const std::vector<unsigned char> bytes = detail::read_raw_file(d.path);
  const CsvDialect dialect{CsvDialect::delimiter_from_name(d.delimiter)};
  const RawTable table = parse_csv_table(detail::as_chars(bytes), d.path.string(), dialect);
  const SplitRows split = split_rows(table.rows, d.test_fraction, d.validation_fraction, d.seed);
  const TableEncoding encoding = TableEncoding::fit(
      table, split.train, table_options(d, out.task == Task::Classification), dialect);
  const TensorDataset all(encoding.transform(table), encoding.transform_target(table));
  nlohmann::json info = {{"format", d.format},
                         {"target", d.target},
                         {"features", encoding.column_names()},
                         {"encoding", encoding.to_json()},
                         {"split",
                          {{"seed", d.seed},
                           {"test_fraction", d.test_fraction},
                           {"validation_fraction", d.validation_fraction},
                           {"rows", table.rows},
                           {"file", d.path.filename().string()},
                           {"sha256", sha256_hex(detail::as_chars(bytes))}}}};
  finish_examples(config, out, all.subset(split.train), all.subset(split.validation),
                  all.subset(split.test), info);
  out.features = fmt::format("{} encodes to {} features per row: {}", d.path.filename().string(),
                             encoding.width(), first_names(encoding.feature_names()));
  if (out.task == Task::Classification) {
    out.task_info["classes"] = encoding.classes();
    out.summary +=
        fmt::format("\nClasses of '{}': {}", d.target, fmt::join(encoding.classes(), ", "));
  }
  if (!encoding.identity()) {
    out.summary +=
        fmt::format("\nFeatures: {} from {} columns", encoding.width(), encoding.columns().size());
    const std::vector<std::string> lines = encoding.describe();
    for (std::size_t i = 0; i < lines.size(); ++i) {
      const EncodedColumn& column = encoding.columns()[i];
      if (column.kind == EncodedColumn::Kind::Categorical || column.missing_in_training > 0 ||
          column.indicator)
        out.summary += "\n  " + lines[i];
    }
  }
  return out;
}

// The largest class label of the example splits, or -1 where they hold no class labels.
std::int64_t largest_label(const PreparedData& data) {
  std::int64_t largest = -1;
  for (const auto& split : {data.train, data.validation, data.test}) {
    const Tensor* targets = nullptr;
    if (const auto* tensors = dynamic_cast<const TensorDataset*>(split.get()))
      targets = &tensors->targets();
    else if (const auto* bytes = dynamic_cast<const ByteImageDataset*>(split.get()))
      targets = &bytes->targets();
    if (!targets || targets->dtype() != DType::Int64 || targets->numel() == 0) continue;
    const std::int64_t* labels = targets->data<std::int64_t>();
    largest = std::max(largest, *std::max_element(labels, labels + targets->numel()));
  }
  return largest;
}

// The model on two training examples, in eval mode and without gradients, before the run folder
// is touched: a model that cannot take the data (a plugin's type, whose shapes the config check
// cannot trace) fails here rather than in the first step, after the folder was rewritten. And a
// bundle's class names and its model's outputs must agree (Predictor refuses them otherwise).
void check_model_takes_data(const RunConfig& config, const PreparedData& data, Module& model) {
  if (!data.train || data.train->size() == 0) return;
  const Batch batch = data.train->get_batch({0, std::min<std::int64_t>(1, data.train->size() - 1)});
  const auto failed = [&](const std::exception& e) {
    return Error(
        fmt::format("the model fails on a batch of inputs {} and targets {} of the data: {}",
                    shape_str(batch.inputs.shape()), shape_str(batch.targets.shape()), e.what()));
  };
  NoGradGuard no_grad;
  EvalModeGuard eval(model);
  Tensor out;
  try {
    out = model.forward(batch.inputs);
  } catch (const std::exception& e) {
    throw failed(e);
  }
  const std::string where =
      config.model_sources.empty() ? config.source.string() : config.model_sources.back();
  if (data.task == Task::Classification && data.task_info.contains("classes") && out.dim() == 2 &&
      out.size(1) != static_cast<std::int64_t>(data.task_info["classes"].size()))
    throw Error(fmt::format(
        "{}: the model gives {} outputs for an example, but the data has {} classes ({}): it "
        "must give one output per class",
        where, out.size(1), data.task_info["classes"].size(),
        first_names(data.task_info["classes"].get<std::vector<std::string>>())));
  // Without class names, every label of every split must have an output (a test label past the
  // outputs would fail only after training).
  if (data.task == Task::Classification && out.dim() == 2) {
    const std::int64_t largest = largest_label(data);
    if (largest >= out.size(1))
      throw Error(fmt::format(
          "{}: the model gives {} outputs for an example, but the data's labels go up to {} ({} "
          "classes): it must give one output per class",
          where, out.size(1), largest, largest + 1));
  }
  try {
    loss_for(config.loss)(out, batch.targets);
  } catch (const std::exception& e) {
    throw failed(e);
  }
}

}  // namespace

void check_model_shapes(const RunConfig& config, const Shape& example) {
  nlohmann::json spec = config.model;
  const bool sequential = spec["type"] == "sequential";
  const nlohmann::json layers = sequential ? spec["layers"] : nlohmann::json::array({spec});
  Shape shape = example;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    nlohmann::json layer = layers[i];
    // Arguments the data decides are not known here; a layer without them is checked at build.
    const LayerType* type = layer.is_object() && layer.contains("type") && layer["type"].is_string()
                                ? find_layer_type(layer["type"].get<std::string>())
                                : nullptr;
    if (type && type->input == LayerType::Input::Tokens && !layer.contains("vocab_size")) return;
    const std::string where = i < config.model_sources.size() ? config.model_sources[i] : "config";
    try {
      const ShapeTrace trace = trace_shapes(layer, shape);
      if (!trace.complete) return;  // a type without output_shape: its forward will tell
      if (!trace.outputs.empty()) shape = trace.outputs.back();
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}: {} (one example of the data is {})", where,
                              sequential ? fmt::format("model.layers[{}]", i) : "[model]", e.what(),
                              shape_str(example)));
    }
  }
}

// Examples with labels: the validation split drawn from the training examples, then finished.
template <class Examples>
void split_and_finish(const RunConfig& config, PreparedData& out, const Examples& train_all,
                      Examples test, nlohmann::json& info) {
  const DataConfig& d = config.data;
  if (out.task == Task::Regression && train_all.targets().dtype() == DType::Int64)
    throw Error(
        "loss mse needs numeric targets, but the data gives class labels; use cross_entropy");
  auto [train, validation] = random_split(train_all, d.validation_fraction, d.seed + 1);
  finish_examples(config, out, std::move(train), std::move(validation), std::move(test), info);
}

PreparedData prepare_data(const RunConfig& config) {
  if (config.data.format == "text") return prepare_text(config);
  if (config.data.format == "csv") return prepare_table(config);
  const DataConfig& d = config.data;
  PreparedData out;
  out.task = config.loss == "mse" ? Task::Regression : Task::Classification;
  nlohmann::json info = {{"format", d.format}};
  if (d.format == "idx") {
    // uint8 images (MNIST's) stay bytes until batched; other element types are converted whole.
    std::optional<ByteImages> train_images = read_idx_bytes(d.train_images);
    std::optional<ByteImages> test_images =
        train_images ? read_idx_bytes(d.test_images) : std::nullopt;
    if (test_images)
      split_and_finish(
          config, out, ByteImageDataset(std::move(*train_images), read_idx_labels(d.train_labels)),
          ByteImageDataset(std::move(*test_images), read_idx_labels(d.test_labels)), info);
    else
      split_and_finish(
          config, out, TensorDataset(read_idx(d.train_images), read_idx_labels(d.train_labels)),
          TensorDataset(read_idx(d.test_images), read_idx_labels(d.test_labels)), info);
  } else {
    const LabeledImages digits = read_mnist_json_digits(d.dir);
    auto [train_part, test_part] =
        random_split(TensorDataset(digits.images, digits.labels), d.test_fraction, d.seed);
    split_and_finish(config, out, train_part, std::move(test_part), info);
  }
  return out;
}

RunResult run_training(const RunConfig& config, bool resume, std::ostream& console,
                       const std::function<bool()>& stop_requested) {
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
  // The model against the data's shape before the data loads, where its header tells; again
  // once it is read.
  if (const std::optional<Shape> example = peek_example_shape(config))
    check_model_shapes(config, *example);
  manual_seed(t.seed);
  const auto reading = std::chrono::steady_clock::now();
  const PreparedData data = prepare_data(config);
  if (data.train) {
    try {
      check_model_shapes(config, data.train->example_shape());
    } catch (const Error& e) {
      if (data.features.empty()) throw;
      throw Error(fmt::format("{}; {}", e.what(), data.features));
    }
  }
  // The first line of the summary says how long the data took to be ready for the first batch.
  std::string summary = data.summary;
  summary.insert(
      std::min(summary.find('\n'), summary.size()),
      fmt::format(
          " (ready in {:.2f} s)",
          std::chrono::duration<double>(std::chrono::steady_clock::now() - reading).count()));
  out << summary << "\n";

  Generator init(t.seed);
  const std::shared_ptr<Module> model = build_model(config, data, init);
  check_model_takes_data(config, data, *model);
  out << describe_model(*model) << "\n";
  std::unique_ptr<Optimizer> optimizer =
      make_optimizer(config.optimizer, model->named_parameters());
  Sources sources = make_sources(config, data, processes);
  const std::int64_t total_steps =
      t.iterations > 0 ? t.iterations
                       : (sources.train->batches_per_epoch() + t.gradient_accumulation - 1) /
                             t.gradient_accumulation * t.epochs;
  // A run for epochs knows its steps only now (the config reader checked a run for iterations).
  if (config.schedule.type == "cosine" && config.schedule.warmup_steps > total_steps)
    throw Error(
        fmt::format("{}: schedule.warmup_steps {} is more than the run's {} steps ({} "
                    "epochs of {} batches)",
                    config.source.string(), config.schedule.warmup_steps, total_steps, t.epochs,
                    sources.train->batches_per_epoch()));

  TrainerOptions options = trainer_options(config, processes, resume);
  options.run_identity = run_identity(config, data);
  const nlohmann::json resolved = config.to_json();
  nlohmann::json schedule = resolved["schedule"];
  // A cosine curve spans the run: a resume that changes the run's length changes the curve.
  if (config.schedule.type == "cosine") schedule["total_steps"] = total_steps;
  options.run_settings = {{"optimizer", resolved["optimizer"]}, {"schedule", schedule}};
  if (t.precision == "bf16") {
    options.bf16_products = detail::bf16_products_supported();
    out << (options.bf16_products
                ? "Precision: bf16 products (AVX512_BF16), float32 weights and optimizer state\n"
                : "Note: trainer.precision = \"bf16\" needs a CPU with AVX512_BF16, which this "
                  "one lacks; training in float32\n");
  }
  // A stop asked of one process alone would leave the others waiting in a collective.
  if (!processes.distributed()) options.stop_requested = stop_requested;
  auto* language_model = dynamic_cast<CausalLanguageModel*>(model.get());
  if (t.sample_every > 0 && data.tokens && language_model) {
    options.step_hook.every = t.sample_every;
    options.step_hook.run = [&, language_model](std::int64_t steps) {
      const nlohmann::json line = {{"step", steps},
                                   {"time", detail::unix_time()},
                                   {"text", sample_text(*language_model, data, t.seed)}};
      std::ofstream(t.output_dir / "samples.jsonl", std::ios::app | std::ios::binary)
          << line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"
          << std::flush;
    };
  }
  // Validation and test measure the plain loss (as timm does), comparable across smoothing
  // settings and equal to what `lathe eval` reports for the bundle.
  const LossFunction loss = loss_for(config.loss);
  options.evaluation_loss = loss;
  Trainer trainer(*model, *optimizer, loss_for(config.loss, config.label_smoothing), data.task,
                  options, make_schedule(config.schedule, config.optimizer.lr, total_steps), out);
  // A refused resume leaves the run folder as it was.
  if (resume) trainer.check_resumable();
  // The run folder says from here on what the run is and how it stands (rank 0 writes files).
  std::optional<RunStatus> status;
  if (processes.rank() == 0) {
    std::filesystem::create_directories(t.output_dir);
    write_file_atomically(t.output_dir / "config.json", config.to_json().dump(2) + "\n");
    if (!resume) std::filesystem::remove(t.output_dir / "samples.jsonl");  // an earlier run's
    status.emplace(t.output_dir);
  }
  try {
    RunResult result = train_test_and_save(config, data, *model, trainer, sources, out);
    if (status) status->finish("finished");
    return result;
  } catch (const TrainingStopped& e) {
    if (status) status->finish("stopped", e.what());
    throw;
  } catch (const std::exception& e) {
    if (status) status->finish("failed", e.what());
    throw;
  }
}

}  // namespace lathe
