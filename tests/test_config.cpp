// The TOML run configuration: defaults, relative paths, --set overrides, and errors that name
// the file, the line, the key and what is allowed.
#include <gtest/gtest.h>

#include "lathe/lathe.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using testing::error_of;

using testing::TempDir;

const char* kConfig = R"(# a small valid config
[data]
format = "csv"
path = "houses.csv"
target = "medv"

[preprocess]
standardize = true

[model]
layers = [
  { type = "linear", in = 13, out = 8 },
  { type = "relu" },
  { type = "linear", in = 8, out = 1 },
]

[loss]
type = "mse"

[optimizer]
type = "sgd"
lr = 0.05
momentum = 0.9

[trainer]
epochs = 3
batch_size = 32
)";

// The config text with one line replaced (1-based), written to a file.
std::filesystem::path variant(const TempDir& dir, int line, const std::string& replacement) {
  std::string text = kConfig, out;
  int current = 1;
  std::size_t start = 0;
  for (std::size_t end; (end = text.find('\n', start)) != std::string::npos;
       start = end + 1, ++current)
    out += (current == line ? replacement : text.substr(start, end - start)) + "\n";
  return dir.write("config.toml", out);
}

TEST(Config, ReadsValuesDefaultsAndRelativePaths) {
  TempDir dir;
  const auto path = dir.write("config.toml", kConfig);
  const RunConfig c = load_run_config(path);
  EXPECT_EQ(c.data.format, "csv");
  EXPECT_EQ(c.data.path, dir / "houses.csv") << "data paths are relative to the config file";
  EXPECT_TRUE(c.preprocess.standardize);
  EXPECT_EQ(c.layers.size(), 3u);
  EXPECT_EQ(c.layers[0]["bias"], true) << "registry defaults are filled in";
  EXPECT_EQ(c.loss, "mse");
  EXPECT_EQ(c.optimizer.type, "sgd");
  EXPECT_DOUBLE_EQ(c.optimizer.lr, 0.05);
  EXPECT_DOUBLE_EQ(c.optimizer.momentum, 0.9);
  EXPECT_EQ(c.trainer.epochs, 3);
  EXPECT_EQ(c.trainer.batch_size, 32);
  EXPECT_EQ(c.trainer.log_every, 100);
  EXPECT_EQ(c.schedule.type, "constant");
  EXPECT_EQ(c.to_json()["trainer"]["epochs"], 3);
}

TEST(Config, SetOverridesAnyKey) {
  TempDir dir;
  const auto path = dir.write("config.toml", kConfig);
  const RunConfig c = load_run_config(
      path, {"trainer.epochs=2", "trainer.output_dir=runs/try", "model.layers.0.out=16",
             "model.layers.2.in=16", "optimizer.nesterov=true", "data.path=other.csv",
             "schedule.type=cosine"});
  EXPECT_EQ(c.trainer.epochs, 2);
  EXPECT_EQ(c.trainer.output_dir, "runs/try");
  EXPECT_EQ(c.layers[0]["out"], 16);
  EXPECT_EQ(c.layers[2]["in"], 16);
  EXPECT_TRUE(c.optimizer.nesterov);
  EXPECT_EQ(c.data.path, "other.csv") << "--set paths are relative to the working directory";
  EXPECT_EQ(c.schedule.type, "cosine");
}

TEST(Config, ErrorsNameFileLineKeyAndAllowedValues) {
  TempDir dir;
  const std::string p = (dir / "config.toml");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 26, "epoch = 3")); }),
            p + ":26: unknown key 'epoch' in [trainer]; allowed: epochs, batch_size, "
                "eval_batch_size, log_every, output_dir, seed, early_stopping_patience, "
                "clip_grad_norm, shuffle, drop_last, progress");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 26, "epochs = \"three\"")); }),
            p + ":26: trainer.epochs must be an integer");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 26, "epochs = -1")); }),
            p + ":26: trainer.epochs must be at least 0, got -1");
  EXPECT_EQ(error_of([&] {
              load_run_config(variant(dir, 12, "  { type = \"linear\", in = 13, outs = 8 },"));
            }),
            p + ":12: model.layers[0]: layer 'linear': unknown key 'outs'; allowed: in, out, bias");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 13, "  { type = \"relu6\" },")); }),
            p + ":13: model.layers[1]: unknown layer type 'relu6'; known types: linear, flatten, "
                "dropout, relu, leaky_relu, sigmoid, tanh, gelu");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 21, "type = \"adagrad\"")); }),
            p + ":21: optimizer.type is \"adagrad\"; allowed: sgd, adam, adamw");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 17, "[losses]")); }),
            p + ":17: unknown section 'losses'; allowed: data, preprocess, model, loss, optimizer, "
                "schedule, trainer");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 3, "format = \"parquet\"")); }),
            p + ":3: data.format is \"parquet\"; allowed: idx, csv, mnist_json");
  EXPECT_NE(error_of([&] { load_run_config(variant(dir, 22, "lr = = 0.05")); }).find(p + ":22:"),
            std::string::npos);
  EXPECT_EQ(error_of([&] { load_run_config(dir / "absent.toml"); }).rfind((dir / "absent.toml"), 0),
            0u);
}

TEST(Config, OverrideErrorsSayTheyCameFromSet) {
  TempDir dir;
  const auto path = dir.write("config.toml", kConfig);
  EXPECT_EQ(
      error_of([&] { load_run_config(path, {"trainer.epoch=3"}); }),
      "--set: unknown key 'epoch' in [trainer]; allowed: epochs, batch_size, eval_batch_size, "
      "log_every, output_dir, seed, early_stopping_patience, clip_grad_norm, shuffle, "
      "drop_last, progress");
  EXPECT_EQ(error_of([&] { load_run_config(path, {"trainer.epochs"}); }),
            "--set trainer.epochs: expected key=value, e.g. --set trainer.epochs=2");
  EXPECT_EQ(error_of([&] { load_run_config(path, {"model.layers.7.out=3"}); }),
            "--set model.layers.7: '7' is not an index of a list of 3 items");
}

}  // namespace
}  // namespace lathe
