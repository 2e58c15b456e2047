// The TOML run configuration: defaults, relative paths, --set overrides, and errors that name
// the file, the line, the key and what is allowed.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "lathe/lathe.h"
#include "lathe/onnx_import.h"
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
  EXPECT_EQ(c.model["layers"].size(), 3u);
  EXPECT_EQ(c.model["layers"][0]["bias"], true) << "registry defaults are filled in";
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
  EXPECT_EQ(c.model["layers"][0]["out"], 16);
  EXPECT_EQ(c.model["layers"][2]["in"], 16);
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
                "clip_grad_norm, shuffle, drop_last, progress, precision, iterations, eval_every, "
                "eval_iters, gradient_accumulation, shards, sample_every");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 26, "epochs = \"three\"")); }),
            p + ":26: trainer.epochs must be an integer");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 26, "epochs = -1")); }),
            p + ":26: trainer.epochs must be at least 0, got -1");
  EXPECT_EQ(error_of([&] {
              load_run_config(variant(dir, 12, "  { type = \"linear\", in = 13, outs = 8 },"));
            }),
            p + ":12: model.layers[0]: layer 'linear': unknown key 'outs'; allowed: in, out, bias");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 13, "  { type = \"relu6\" },")); }),
            p + ":13: model.layers[1]: unknown layer type 'relu6'; known types: linear, conv2d, "
                "max_pool2d, avg_pool2d, global_avg_pool, batch_norm1d, batch_norm2d, reshape, "
                "flatten, dropout, relu, leaky_relu, sigmoid, tanh, gelu, gpt, onnx_graph");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 21, "type = \"adagrad\"")); }),
            p + ":21: optimizer.type is \"adagrad\"; allowed: sgd, adam, adamw");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 17, "[losses]")); }),
            p + ":17: unknown section 'losses'; allowed: data, preprocess, augment, model, loss, "
                "optimizer, schedule, trainer");
  EXPECT_EQ(error_of([&] { load_run_config(variant(dir, 3, "format = \"parquet\"")); }),
            p + ":3: data.format is \"parquet\"; allowed: idx, csv, mnist_json, text");
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
      "drop_last, progress, precision, iterations, eval_every, eval_iters, gradient_accumulation, "
      "shards, sample_every");
  EXPECT_EQ(error_of([&] { load_run_config(path, {"trainer.epochs"}); }),
            "--set trainer.epochs: expected key=value, e.g. --set trainer.epochs=2");
  EXPECT_EQ(error_of([&] { load_run_config(path, {"model.layers.7.out=3"}); }),
            "--set model.layers.7: '7' is not an index of a list of 3 items");
}

const char* kImageConfig = R"([data]
format = "idx"
train_images = "a"
train_labels = "b"
test_images = "c"
test_labels = "d"

[preprocess]
scale = 0.00392156862745098
normalize_mean = 0.5
normalize_std = 0.5

[augment]
random_crop_padding = 2
horizontal_flip = 0.5
random_erasing = 0.25

[model]
layers = [{ type = "flatten" }, { type = "linear", in = 784, out = 10 }]

[loss]
label_smoothing = 0.1
)";

// kImageConfig with `from` replaced by `to`, parsed as "c.toml".
RunConfig image_config(const std::string& from = "", const std::string& to = "",
                       const std::vector<std::string>& overrides = {}) {
  std::string text = kImageConfig;
  if (!from.empty()) text.replace(text.find(from), from.size(), to);
  return parse_run_config(text, "c.toml", "/", overrides);
}

TEST(Config, AugmentAndLabelSmoothing) {
  const RunConfig c = image_config();
  EXPECT_EQ(c.augment.random_crop_padding, 2);
  EXPECT_EQ(c.augment.horizontal_flip, 0.5);
  EXPECT_EQ(c.augment.random_erasing, 0.25);
  EXPECT_EQ(c.augment.fill, -1.0) << "by default, what a raw 0 pixel becomes: (0 - 0.5) / 0.5";
  EXPECT_TRUE(c.augment.enabled());
  EXPECT_EQ(c.loss, "cross_entropy");
  EXPECT_EQ(c.label_smoothing, 0.1);
  const nlohmann::json json = c.to_json();
  EXPECT_EQ(json["augment"], nlohmann::json::parse(R"({"random_crop_padding": 2,
    "horizontal_flip": 0.5, "random_erasing": 0.25, "fill": -1.0})"));
  EXPECT_EQ(json["loss"]["label_smoothing"], 0.1);
  EXPECT_EQ(image_config("", "", {"augment.fill=0.25"}).augment.fill, 0.25);
  EXPECT_EQ(image_config("normalize_mean = 0.5\nnormalize_std = 0.5", "").augment.fill, 0.0)
      << "without normalize a raw 0 stays 0";
  const RunConfig plain = image_config(
      "[augment]\nrandom_crop_padding = 2\nhorizontal_flip = 0.5\nrandom_erasing = 0.25\n", "");
  EXPECT_FALSE(plain.augment.enabled());
  EXPECT_EQ(plain.to_json()["augment"]["random_crop_padding"], 0);
}

TEST(Config, AugmentAndLabelSmoothingErrors) {
  const auto error = [](const std::string& from, const std::string& to) {
    return error_of([&] { image_config(from, to); });
  };
  EXPECT_EQ(error("horizontal_flip = 0.5", "flip = 0.5"),
            "c.toml:15: unknown key 'flip' in [augment]; allowed: random_crop_padding, "
            "horizontal_flip, random_erasing, fill");
  EXPECT_EQ(error("horizontal_flip = 0.5", "horizontal_flip = 1.5"),
            "c.toml:15: augment.horizontal_flip must be in [0, 1], got 1.5");
  EXPECT_EQ(error("random_erasing = 0.25", "random_erasing = \"often\""),
            "c.toml:16: augment.random_erasing must be a number");
  EXPECT_EQ(error("random_crop_padding = 2", "random_crop_padding = -1"),
            "c.toml:14: augment.random_crop_padding must be at least 0, got -1");
  EXPECT_EQ(error("random_crop_padding = 2", "random_crop_padding = 2.5"),
            "c.toml:14: augment.random_crop_padding must be an integer");
  EXPECT_EQ(error("random_erasing = 0.25", "fill = nan"),
            "c.toml:16: augment.fill must be a finite number");
  EXPECT_EQ(error("label_smoothing = 0.1", "label_smoothing = 1.0"),
            "c.toml:22: loss.label_smoothing must be in [0, 1), got 1");
  EXPECT_EQ(error("label_smoothing = 0.1", "label_smoothing = 0.1\ntype = \"mse\""),
            "c.toml:22: loss.label_smoothing needs loss type \"cross_entropy\"");
  EXPECT_EQ(error("normalize_mean = 0.5\nnormalize_std = 0.5", "standardize = true"),
            "c.toml: [augment] random_crop_padding with preprocess.standardize needs 'fill' (a raw "
            "0 maps to a different value in every feature)");
  EXPECT_EQ(error_of([] { image_config("", "", {"augment.horizontal_flip=-0.5"}); }),
            "--set: augment.horizontal_flip must be in [0, 1], got -0.5");
}

// Regression (fuzz/fuzz_config.cpp, UBSan "execution reached an unreachable program point" in
// toml++ 3.3.0's is_non_ascii_horizontal_whitespace): some non-ASCII code points where toml++
// looks for whitespace. lathe finds those places first and reports them.
TEST(Config, CodePointsTomlPlusPlusMishandlesAreReportedNotParsed) {
  const auto error = [](const std::string& text) {
    return error_of([&] { parse_run_config(text, "c.toml", "/"); });
  };
  EXPECT_EQ(error("\xcb\xa7"
                  "dt = 1\n"),
            "c.toml:1:1: a non-ASCII character outside a string or comment");
  EXPECT_EQ(error("[data]\nformat = \"csv\" \xc2\xa7\n"),
            "c.toml:2:16: a non-ASCII character outside a string or comment");
  EXPECT_EQ(error("s = \"\"\"\\\n  \xc2\xa7\"\"\"\n"),
            "c.toml:2:3: U+00A7 first after a line-ending backslash (toml++ mishandles it; "
            "escape it as \\u00A7)");
  // Whitespace toml++ skips (U+FEFF) and then U+FEFE, the last chunk of its table.
  EXPECT_EQ(error("s = \"\"\"\\\n\xef\xbb\xbf\xef\xbb\xbe\"\"\"\n"),
            "c.toml:2:4: U+FEFE first after a line-ending backslash (toml++ mishandles it; "
            "escape it as \\uFEFE)");
  EXPECT_EQ(error("s = \"\"\"a\\\xcc\xaa\"\"\"\n"),
            "c.toml:1:10: a non-ASCII character after a backslash");
  // Quotes inside a number toml++ scans ahead through start no string.
  EXPECT_EQ(error("f=2\"\xef\xbb\xbd"),
            "c.toml:1:5: a non-ASCII character outside a string or comment");
  EXPECT_EQ(error("f = 1{=a=a{a2|{'\xcd\xaf'\n"),
            "c.toml:1:17: a non-ASCII character outside a string or comment");
  EXPECT_EQ(error("d = 1979-05-27 \"\xc2\xa7\"\n"),
            "c.toml:1:17: a non-ASCII character outside a string or comment");
  // Non-ASCII text in strings and comments is fine, including after a run of quotes.
  EXPECT_EQ(error("# caf\xc3\xa9 \xc2\xa7\n[data]\nformat = \"csv\"\npath = \"\xc2\xa7.csv\"\n"
                  "target='\xcf\x80'\nclass_names = [\"\"\"a\"\"\"\"\", '''\xc2\xa7''']\n"),
            "c.toml: missing [model] section with 'layers' or a model 'type'");
}

// Regression (fuzz/fuzz_config.cpp): --set values that neither parse as TOML nor quote as a
// string escaped as toml::parse_error or nlohmann::json::type_error instead of a lathe::Error.
TEST(Config, OverridesThatAreNeitherTomlNorStrings) {
  const std::string toml = "[data]\nformat = \"csv\"\npath = \"a\"\ntarget = \"y\"\n";
  const auto error = [&](const std::string& assignment) {
    return error_of([&] { parse_run_config(toml, "c.toml", "/", {assignment}); });
  };
  EXPECT_EQ(error("data.target=\xff"), "--set data.target: the value is not valid UTF-8");
  EXPECT_EQ(error("data.target=\xed\xa0\x80"), "--set data.target: the value is not valid UTF-8");
  EXPECT_EQ(error("a..b=1").substr(0, 51), "--set a..b=1: not a key path and a TOML value or st");
  EXPECT_EQ(error("data.target=\x7f").substr(0, 20), "--set data.target=\x7f:");
  // A value that is a string to lathe only because of the toml++ workaround.
  EXPECT_EQ(error("data.target=\xc2\xa7"),
            "c.toml: missing [model] section with 'layers' or a model 'type'");
}

TEST(Config, TableKeys) {
  TempDir dir;
  const std::string p = (dir / "config.toml");
  const auto with = [&](const std::string& lines) {
    return load_run_config(variant(dir, 5, "target = \"medv\"\n" + lines));
  };
  RunConfig c = load_run_config(variant(dir, 5, "target = \"medv\""));
  EXPECT_EQ(c.data.delimiter, ",");
  EXPECT_EQ(c.data.missing_values, (std::vector<std::string>{"", "NA", "NaN", "null"}));
  EXPECT_EQ(c.data.impute, "none");
  EXPECT_EQ(c.data.unknown_category, "ignore");
  EXPECT_TRUE(c.data.table_json().empty());
  EXPECT_FALSE(c.to_json()["data"].contains("impute")) << "defaults stay out of a run's identity";

  c = with(
      "delimiter = \";\"\ncategorical = [\"chas\"]\ndrop = [\"b\"]\nmissing_values = [\"?\"]\n"
      "impute = \"median\"\nimpute_categorical = \"constant\"\nfill_category = \"none\"\n"
      "impute_columns = { rm = \"mean\" }\nmissing_indicator = [\"rm\"]\n"
      "unknown_category = \"error\"\nfill_value = -1");
  EXPECT_EQ(c.data.delimiter, ";");
  EXPECT_EQ(c.data.categorical, std::vector<std::string>{"chas"});
  EXPECT_EQ(c.data.drop, std::vector<std::string>{"b"});
  EXPECT_EQ(c.data.missing_values, std::vector<std::string>{"?"});
  EXPECT_EQ(c.data.impute, "median");
  EXPECT_EQ(c.data.impute_categorical, "constant");
  EXPECT_EQ(c.data.fill_category, "none");
  EXPECT_EQ(c.data.fill_value, -1);
  EXPECT_EQ(c.data.impute_columns, (std::map<std::string, std::string>{{"rm", "mean"}}));
  EXPECT_EQ(c.data.missing_indicator_columns, std::vector<std::string>{"rm"});
  EXPECT_EQ(c.data.unknown_category, "error");
  EXPECT_EQ(c.to_json()["data"]["impute"], "median");
  EXPECT_TRUE(with("missing_indicator = true").data.missing_indicator);

  EXPECT_EQ(error_of([&] { with("delimiter = \"|\""); }),
            p + ":6: data.delimiter \"|\" is not one lathe reads; use \",\", \";\" or \"\\t\"");
  EXPECT_EQ(error_of([&] { with("class_names = [\"a\", \"b\", \"a\"]"); }),
            p + ":6: data.class_names lists 'a' twice (entries 0 and 2); a class is one name");
  EXPECT_EQ(
      error_of([&] { with("impute = \"zero\""); }),
      p + ":6: data.impute is \"zero\"; allowed: none, mean, median, most_frequent, constant");
  EXPECT_EQ(error_of([&] { with("impute_categorical = \"median\""); }),
            p + ":6: data.impute_categorical is \"median\"; allowed: none, most_frequent, "
                "constant");
  EXPECT_EQ(error_of([&] { with("impute_columns = { rm = \"guess\" }"); }),
            p + ":6: data.impute_columns.rm must be one of: none, mean, median, most_frequent, "
                "constant");
  EXPECT_EQ(error_of([&] { with("missing_indicator = 3"); }),
            p + ":6: data.missing_indicator must be true, false or a list of column names");
  EXPECT_EQ(error_of([&] { with("unknown_category = \"skip\""); }),
            p + ":6: data.unknown_category is \"skip\"; allowed: ignore, error");
  EXPECT_EQ(error_of([&] { with("categorical = \"chas\""); }),
            p + ":6: data.categorical must be a list of strings");
  EXPECT_EQ(
      error_of([&] {
        load_run_config(dir.write("idx.toml",
                                  "[data]\nformat = \"mnist_json\"\ndir = \"d\"\nimpute = "
                                  "\"mean\"\n[model]\nlayers = [{ type = \"relu\" }]\n"));
      }),
      dir / "idx.toml" + ": [data] impute applies to format \"csv\" only, not \"mnist_json\"");
}

}  // namespace
}  // namespace lathe

namespace lathe {
namespace {

// Values are checked when the config is read (before any data loads), each error at its line.
TEST(Config, OptimizerScheduleAndTrainerValuesAreCheckedAtTheirLines) {
  const std::string head =
      "[data]\nformat = \"csv\"\npath = \"a.csv\"\ntarget = \"y\"\n[model]\nlayers = [{ type = "
      "\"relu\" }]\n";
  const auto error = [&](const std::string& rest) {
    return testing::error_of([&] { parse_run_config(head + rest, "c.toml", "/"); });
  };
  EXPECT_EQ(error("[optimizer]\nlr = -0.1\n"), "c.toml:8: optimizer.lr must be > 0, got -0.1");
  EXPECT_EQ(error("[optimizer]\nlr = 0\n"), "c.toml:8: optimizer.lr must be > 0, got 0");
  EXPECT_EQ(error("[optimizer]\nbeta2 = 1.0\n"),
            "c.toml:8: optimizer.beta2 must be in [0, 1), got 1");
  EXPECT_EQ(error("[optimizer]\nweight_decay = -1\n"),
            "c.toml:8: optimizer.weight_decay must be at least 0, got -1");
  EXPECT_EQ(error("[optimizer]\ntype = \"sgd\"\nnesterov = true\n"),
            "c.toml:9: optimizer.nesterov needs momentum > 0 and dampening 0, got momentum 0 and "
            "dampening 0");
  EXPECT_EQ(error("[optimizer]\nlr = nan\n"), "c.toml:8: optimizer.lr must be a finite number");
  EXPECT_EQ(error("[schedule]\ngamma = 0\n"), "c.toml:8: schedule.gamma must be > 0, got 0");
  EXPECT_EQ(error("[schedule]\ntype = \"cosine\"\nmin_lr = 0.5\n"),
            "c.toml:9: schedule.min_lr 0.5 is more than optimizer.lr 0.001");
  EXPECT_EQ(error("[schedule]\ntype = \"cosine\"\nwarmup_steps = 50\n[trainer]\niterations = 20\n"),
            "c.toml:9: schedule.warmup_steps 50 is more than the run's 20 steps "
            "(trainer.iterations)");
  EXPECT_EQ(error("[trainer]\nclip_grad_norm = -1\n"),
            "c.toml:8: trainer.clip_grad_norm must be at least 0, got -1");
}

// docs/config.md is what the tables say: regenerate it with
// `./build/release/src/lathe config-reference > docs/config.md`.
TEST(Config, TheReferencePageIsCurrent) {
  register_onnx_import();  // the lathe command registers the onnx_graph type at start
  std::ifstream page(LATHE_SOURCE_DIR "/docs/config.md");
  ASSERT_TRUE(page) << "docs/config.md is missing";
  const std::string text((std::istreambuf_iterator<char>(page)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, config_reference())
      << "docs/config.md is stale: ./build/release/src/lathe config-reference > docs/config.md";
  // Every key of every example config is in it.
  for (const char* example :
       {"fashion_mlp", "fashion_cnn", "mnist_mlp", "house_prices", "gpt_sotu"})
    EXPECT_NO_THROW(
        load_run_config(std::string(LATHE_SOURCE_DIR "/examples/") + example + "/config.toml"))
        << example;
}

}  // namespace
}  // namespace lathe
