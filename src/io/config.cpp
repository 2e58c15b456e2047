// Reading the TOML run configuration with toml++. Every accessor of a Section declares a key; a
// key present in the file but never declared is reported with its line and the allowed keys.
#include "lathe/config.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <optional>
#include <set>

#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/table.h"
#include "src/io/config_keys.h"
#include "src/io/config_overrides.h"
#include "src/io/file_bytes.h"
#include "src/io/toml_text.h"

namespace lathe {
namespace {

using detail::config_keys;
using detail::config_sections;
using detail::ConfigKey;
using detail::find_config_key;
using detail::kOverrideSource;
using detail::range_text;

// Nodes copied in from --set lose their source position (toml++ does not copy it).
bool from_override(const toml::node& node) {
  const auto& source = node.source();
  return !source.path || source.begin.line == 0 || *source.path == kOverrideSource;
}

std::string where(const toml::node& node) {
  if (from_override(node)) return kOverrideSource;
  return fmt::format("{}:{}", *node.source().path, node.source().begin.line);
}

[[noreturn]] void fail(const toml::node& node, const std::string& message) {
  throw Error(fmt::format("{}: {}", where(node), message));
}

std::string join(const std::vector<std::string>& items) {
  return fmt::format("{}", fmt::join(items, ", "));
}

nlohmann::json to_json_value(const toml::node& node);

// One section of the file, read against the table of keys (src/io/config_keys.cpp): every
// accessor names a key of the table, whose type and range it checks; a key in the file that no
// accessor read is reported with its line and the section's keys.
class Section {
 public:
  Section(const toml::table* table, std::string name, std::filesystem::path base_dir)
      : table_(table), name_(std::move(name)), base_dir_(std::move(base_dir)) {}

  double number(const std::string& key, double fallback) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (auto v = node->value<double>(); v && (node->is_floating_point() || node->is_integer()))
      return in_range(*node, key, *v);
    fail(*node, fmt::format("{}.{} must be a number", name_, key));
  }

  std::int64_t integer(const std::string& key, std::int64_t fallback) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_integer()) fail(*node, fmt::format("{}.{} must be an integer", name_, key));
    const std::int64_t value = *node->value<std::int64_t>();
    in_range(*node, key, static_cast<double>(value));
    return value;
  }

  bool boolean(const std::string& key, bool fallback) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_boolean()) fail(*node, fmt::format("{}.{} must be true or false", name_, key));
    return *node->value<bool>();
  }

  std::string string(const std::string& key, const std::string& fallback) {
    const toml::node* node = find(key);
    if (!node) return fallback;
    if (!node->is_string()) fail(*node, fmt::format("{}.{} must be a string", name_, key));
    std::string value = *node->value<std::string>();
    const std::vector<std::string>& allowed = spec(key).allowed;
    if (!allowed.empty() && std::find(allowed.begin(), allowed.end(), value) == allowed.end())
      fail(*node, fmt::format("{}.{} is \"{}\"; allowed: {}", name_, key, value, join(allowed)));
    return value;
  }

  // A path; relative ones are taken from the config file's folder unless set with --set.
  std::filesystem::path path(const std::string& key) {
    const toml::node* node = find(key);
    const std::string text = string(key, "");
    if (!node || text.empty()) return {};
    const std::filesystem::path p(text);
    return p.is_relative() && !from_override(*node) ? base_dir_ / p : p;
  }

  std::vector<std::string> strings(const std::string& key) {
    const toml::node* node = find(key);
    std::vector<std::string> out;
    if (!node) return out;
    const toml::array* array = node->as_array();
    if (!array) fail(*node, fmt::format("{}.{} must be a list of strings", name_, key));
    for (const toml::node& item : *array) {
      if (!item.is_string()) fail(item, fmt::format("{}.{} must be a list of strings", name_, key));
      out.push_back(*item.value<std::string>());
    }
    return out;
  }

  const toml::node* raw(const std::string& key) { return find(key); }
  // A key outside the table (a registered model type's argument), where others() put it.
  const toml::node* argument(const std::string& key) const {
    return table_ ? table_->get(key) : nullptr;
  }

  // A registered model type's file argument, resolved as path() resolves a config key's.
  std::filesystem::path argument_path(const std::string& key) const {
    const toml::node* node = argument(key);
    if (!node || !node->is_string()) return {};
    const std::filesystem::path p(*node->value<std::string>());
    return p.is_relative() && !from_override(*node) ? base_dir_ / p : p;
  }

  // The keys besides those of the table, as JSON: a registered model type's arguments, which
  // the layer registry checks.
  nlohmann::json others() {
    nlohmann::json out = nlohmann::json::object();
    if (!table_) return out;
    for (auto&& [key, node] : *table_) {
      const std::string k(key.str());
      if (!find_config_key(name_, k) || k == "type") {
        out[k] = to_json_value(node);
        declared_.insert(k);
      }
    }
    return out;
  }

  // Reports the first key nobody asked for.
  void finish() const {
    if (!table_) return;
    std::vector<std::string> allowed;
    for (const ConfigKey& k : config_keys())
      if (k.section == name_) allowed.push_back(k.key);
    for (auto&& [key, node] : *table_) {
      const std::string k(key.str());
      if (!declared_.count(k))
        fail(node, fmt::format("unknown key '{}' in [{}]; allowed: {}", k, name_, join(allowed)));
    }
  }

  bool present() const { return table_ != nullptr; }

 private:
  // The table's entry for `key`: reading a key it lacks is a bug in lathe, not in the config.
  const ConfigKey& spec(const std::string& key) const {
    const ConfigKey* found = find_config_key(name_, key);
    if (!found)
      throw std::logic_error(
          fmt::format("config key {}.{} is read but missing from "
                      "src/io/config_keys.cpp",
                      name_, key));
    return *found;
  }

  const toml::node* find(const std::string& key) {
    spec(key);
    declared_.insert(key);
    return table_ ? table_->get(key) : nullptr;
  }

  double in_range(const toml::node& node, const std::string& key, double value) const {
    const ConfigKey& k = spec(key);
    const bool low =
        k.minimum && (k.minimum_exclusive ? !(value > *k.minimum) : !(value >= *k.minimum));
    const bool high =
        k.maximum && (k.maximum_exclusive ? !(value < *k.maximum) : !(value <= *k.maximum));
    if (!std::isfinite(value)) fail(node, fmt::format("{}.{} must be a finite number", name_, key));
    if (low || high)
      fail(node, fmt::format("{}.{} must be {}, got {}", name_, key, range_text(k), value));
    return value;
  }

  const toml::table* table_;
  std::string name_;
  std::filesystem::path base_dir_;
  std::set<std::string> declared_;
};

nlohmann::json to_json_value(const toml::node& node) {
  if (auto t = node.as_table()) {
    nlohmann::json out = nlohmann::json::object();
    for (auto&& [key, value] : *t) out[std::string(key.str())] = to_json_value(value);
    return out;
  }
  if (auto a = node.as_array()) {
    nlohmann::json out = nlohmann::json::array();
    for (const toml::node& item : *a) out.push_back(to_json_value(item));
    return out;
  }
  if (node.is_integer()) return *node.value<std::int64_t>();
  if (node.is_floating_point()) return *node.value<double>();
  if (node.is_boolean()) return *node.value<bool>();
  if (node.is_string()) return *node.value<std::string>();
  fail(node, "dates and times are not used in lathe configs");
}

nlohmann::json read_layers(Section& model, std::vector<std::string>& sources) {
  const toml::node* node = model.raw("layers");
  if (!node)
    throw Error(
        "config: [model] needs 'layers', a list of tables like { type = \"linear\", in = 784, out "
        "= 128 }");
  const toml::array* layers = node->as_array();
  if (!layers || layers->empty()) fail(*node, "model.layers must be a non-empty list of tables");
  nlohmann::json specs = nlohmann::json::array();
  for (std::size_t i = 0; i < layers->size(); ++i) {
    const toml::node& layer = *layers->get(i);
    const toml::table* table = layer.as_table();
    if (!table) fail(layer, fmt::format("model.layers[{}] must be a table with a 'type'", i));
    sources.push_back(where(layer));
    try {
      specs.push_back(validate_layer_spec(to_json_value(layer)));
    } catch (const LayerSpecError& e) {
      const toml::node* at = table->get(e.key);
      fail(at ? *at : layer, fmt::format("model.layers[{}]: {}", i, e.what()));
    }
  }
  return specs;
}

// [model]: `layers = [...]` (a Sequential), or `type` naming a registered model type with its
// arguments as the other keys (type = "gpt", n_layer = 4, ...).
nlohmann::json read_model(Section& model, const std::string& where,
                          std::vector<std::string>& sources) {
  const toml::node* type = model.raw("type");
  if (model.raw("layers")) {
    if (type && !(type->is_string() && *type->value<std::string>() == "sequential"))
      fail(*type,
           "model.type goes with layers only as \"sequential\"; a registered model type "
           "takes its arguments instead of layers");
    return {{"type", "sequential"}, {"layers", read_layers(model, sources)}};
  }
  if (!type)
    throw Error(fmt::format(
        "{}: [model] needs 'layers', a list of tables like {{ type = \"linear\", in = 784, out = "
        "128 }}, or 'type', a registered model type such as \"gpt\" with its arguments",
        where));
  nlohmann::json spec = model.others();
  sources = {::lathe::where(*type)};
  if (type->is_string())
    if (const LayerType* registered = find_layer_type(*type->value<std::string>()))
      for (const LayerArgument& argument : registered->arguments)
        if (argument.kind == LayerArgument::Kind::Path && spec.contains(argument.key) &&
            spec[argument.key].is_string())
          spec[argument.key] = model.argument_path(argument.key).string();
  try {
    return validate_layer_spec(spec);
  } catch (const LayerSpecError& e) {
    const toml::node* at = model.argument(e.key);
    fail(at ? *at : *type, fmt::format("[model]: {}", e.what()));
  }
}

// The data decides what the model's first layer takes: token ids from text, features otherwise.
void check_model_input(const nlohmann::json& spec, const std::string& format,
                       const toml::table& model) {
  const nlohmann::json& first = spec["type"] == "sequential" ? spec["layers"][0] : spec;
  const LayerType* type = find_layer_type(first["type"].get<std::string>());
  const bool tokens = type && type->input == LayerType::Input::Tokens;
  if (tokens == (format == "text")) return;
  const toml::node& at = model.get("type") ? *model.get("type") : *model.get("layers");
  if (format == "text")
    fail(at, fmt::format("[data] format = \"text\" gives token ids; the model must take them "
                         "(a language model type such as \"gpt\"), not '{}'",
                         first["type"].get<std::string>()));
  fail(at, fmt::format("model type '{}' takes token ids, which only [data] format = \"text\" "
                       "gives (this data is \"{}\")",
                       first["type"].get<std::string>(), format));
}

// The [data] keys of tables (format "csv"): how cells become features.
void read_table_keys(Section& data, DataConfig& d) {
  if (const toml::node* node = data.raw("delimiter")) {
    d.delimiter = data.string("delimiter", ",");
    try {
      CsvDialect::delimiter_from_name(d.delimiter);
    } catch (const Error& e) {
      fail(*node, fmt::format("data.{}", e.what()));
    }
  }
  d.categorical = data.strings("categorical");
  d.drop = data.strings("drop");
  if (data.raw("missing_values")) d.missing_values = data.strings("missing_values");
  d.impute = data.string("impute", d.impute);
  d.impute_categorical = data.string("impute_categorical", d.impute_categorical);
  if (const toml::node* node = data.raw("impute_columns")) {
    const toml::table* table = node->as_table();
    if (!table)
      fail(*node,
           "data.impute_columns must be a table of column = method, e.g. { sex = "
           "\"most_frequent\" }");
    const std::vector<std::string>& allowed = find_config_key("data", "impute")->allowed;
    for (auto&& [key, value] : *table) {
      const std::string column(key.str());
      if (!value.is_string() ||
          std::find(allowed.begin(), allowed.end(), *value.value<std::string>()) == allowed.end())
        fail(value,
             fmt::format("data.impute_columns.{} must be one of: {}", column, join(allowed)));
      d.impute_columns[column] = *value.value<std::string>();
    }
  }
  d.fill_value = data.number("fill_value", d.fill_value);
  if (!std::isfinite(d.fill_value)) fail(*data.raw("fill_value"), "data.fill_value must be finite");
  d.fill_category = data.string("fill_category", d.fill_category);
  if (const toml::node* node = data.raw("missing_indicator")) {
    if (node->is_boolean())
      d.missing_indicator = data.boolean("missing_indicator", false);
    else if (node->is_array())
      d.missing_indicator_columns = data.strings("missing_indicator");
    else
      fail(*node, "data.missing_indicator must be true, false or a list of column names");
  }
  d.unknown_category = data.string("unknown_category", d.unknown_category);
}

}  // namespace

RunConfig load_run_config(const std::filesystem::path& path,
                          const std::vector<std::string>& overrides) {
  if (!std::filesystem::is_regular_file(path))
    throw Error(fmt::format(
        "{}: cannot open: {}", path.string(),
        std::filesystem::exists(path) ? "not a regular file" : "No such file or directory"));
  const std::vector<unsigned char> text = detail::read_raw_file(path);
  RunConfig config =
      parse_run_config(detail::as_chars(text), path.string(), path.parent_path(), overrides);
  config.source = path;
  return config;
}

namespace {

DataConfig read_data(Section& data, const std::string& where) {
  if (!data.present()) throw Error(fmt::format("{}: missing [data] section", where));
  DataConfig d;
  d.format = data.string("format", "");
  d.train_images = data.path("train_images");
  d.train_labels = data.path("train_labels");
  d.test_images = data.path("test_images");
  d.test_labels = data.path("test_labels");
  d.path = data.path("path");
  d.tokenizer = data.string("tokenizer", d.tokenizer);
  d.vocab_size = data.integer("vocab_size", d.vocab_size);
  d.target = data.string("target", "");
  d.dir = data.path("dir");
  d.test_fraction = data.number("test_fraction", d.test_fraction);
  d.validation_fraction = data.number("validation_fraction", d.validation_fraction);
  d.seed = static_cast<std::uint64_t>(data.integer("seed", 0));
  d.class_names = data.strings("class_names");
  for (std::size_t i = 0; i < d.class_names.size(); ++i)
    for (std::size_t k = 0; k < i; ++k)
      if (d.class_names[i] == d.class_names[k])
        fail(*data.raw("class_names")->as_array()->get(i),
             fmt::format("data.class_names lists '{}' twice (entries {} and {}); a class is one "
                         "name",
                         d.class_names[i], k, i));
  read_table_keys(data, d);
  data.finish();
  const auto require = [&](bool ok, const char* what) {
    if (!ok) throw Error(fmt::format("{}: [data] format \"{}\" needs {}", where, d.format, what));
  };
  if (d.format.empty())
    throw Error(fmt::format(
        "{}: [data] needs format = \"idx\", \"csv\", \"mnist_json\" or \"text\"", where));
  if (d.format == "idx")
    require(!d.train_images.empty() && !d.train_labels.empty() && !d.test_images.empty() &&
                !d.test_labels.empty(),
            "train_images, train_labels, test_images and test_labels");
  if (d.format == "csv") require(!d.path.empty() && !d.target.empty(), "path and target");
  if (d.format != "csv" && !d.table_json().empty())
    throw Error(fmt::format("{}: [data] {} applies to format \"csv\" only, not \"{}\"", where,
                            d.table_json().begin().key(), d.format));
  if (d.format == "mnist_json") require(!d.dir.empty(), "dir");
  if (d.format == "text") require(!d.path.empty(), "path (a text file or a folder of .txt files)");
  return d;
}

PreprocessConfig read_preprocess(Section& preprocess, const std::string& where) {
  PreprocessConfig p;
  p.scale = preprocess.number("scale", 1.0);
  if (preprocess.raw("normalize_mean")) p.normalize_mean = preprocess.number("normalize_mean", 0);
  if (preprocess.raw("normalize_std")) p.normalize_std = preprocess.number("normalize_std", 1);
  p.standardize = preprocess.boolean("standardize", false);
  preprocess.finish();
  if (p.normalize_mean.has_value() != p.normalize_std.has_value())
    throw Error(
        fmt::format("{}: [preprocess] normalize_mean and normalize_std go together", where));
  if (p.standardize && p.normalize_mean)
    throw Error(
        fmt::format("{}: [preprocess] choose standardize or normalize_mean/std, not both", where));
  return p;
}

AugmentConfig read_augment(Section& augment, const PreprocessConfig& p, const std::string& where) {
  AugmentConfig a;
  a.random_crop_padding = augment.integer("random_crop_padding", 0);
  a.horizontal_flip = augment.number("horizontal_flip", 0);
  a.random_erasing = augment.number("random_erasing", 0);
  if (augment.raw("fill")) {
    a.fill = augment.number("fill", 0);
  } else if (p.standardize && a.random_crop_padding > 0) {
    throw Error(fmt::format(
        "{}: [augment] random_crop_padding with preprocess.standardize needs 'fill' (a raw 0 maps "
        "to a different value in every feature)",
        where));
  } else if (p.normalize_mean) {
    a.fill = (0.0 - *p.normalize_mean) / *p.normalize_std;  // (0 * scale - mean) / std
  }
  augment.finish();
  return a;
}

OptimizerConfig read_optimizer(Section& optimizer, const DataConfig& d) {
  OptimizerConfig o;
  o.type = optimizer.string("type", o.type);
  o.lr = optimizer.number("lr", o.lr);
  o.momentum = optimizer.number("momentum", o.momentum);
  o.dampening = optimizer.number("dampening", o.dampening);
  o.nesterov = optimizer.boolean("nesterov", o.nesterov);
  o.weight_decay = optimizer.number("weight_decay", o.type == "adamw" ? 0.01 : 0.0);
  o.beta1 = optimizer.number("beta1", o.beta1);
  o.beta2 = optimizer.number("beta2", o.beta2);
  o.eps = optimizer.number("eps", o.eps);
  o.decay_matrices_only = optimizer.boolean("decay_matrices_only", d.format == "text");
  if (o.nesterov && o.type == "sgd" && (o.momentum <= 0 || o.dampening != 0))
    fail(*optimizer.raw("nesterov"),
         fmt::format("optimizer.nesterov needs momentum > 0 and dampening 0, got momentum {} and "
                     "dampening {}",
                     o.momentum, o.dampening));
  optimizer.finish();
  return o;
}

ScheduleConfig read_schedule(Section& schedule, const OptimizerConfig& o) {
  ScheduleConfig s;
  s.type = schedule.string("type", s.type);
  s.step_size = schedule.integer("step_size", s.step_size);
  s.gamma = schedule.number("gamma", s.gamma);
  s.warmup_steps = schedule.integer("warmup_steps", s.warmup_steps);
  s.min_lr = schedule.number("min_lr", s.min_lr);
  if (s.min_lr > o.lr)
    fail(*schedule.raw("min_lr"),
         fmt::format("schedule.min_lr {} is more than optimizer.lr {}", s.min_lr, o.lr));
  schedule.finish();
  return s;
}

TrainerConfig read_trainer(Section& trainer, const DataConfig& d, const std::string& where) {
  TrainerConfig t;
  t.epochs = trainer.integer("epochs", t.epochs);
  t.batch_size = trainer.integer("batch_size", t.batch_size);
  t.eval_batch_size = trainer.integer("eval_batch_size", t.eval_batch_size);
  t.log_every = trainer.integer("log_every", t.log_every);
  const std::string output_dir = trainer.string("output_dir", t.output_dir.string());
  t.output_dir = output_dir;
  t.seed = static_cast<std::uint64_t>(trainer.integer("seed", 0));
  t.early_stopping_patience = trainer.integer("early_stopping_patience", 0);
  t.clip_grad_norm = trainer.number("clip_grad_norm", 0);
  t.shuffle = trainer.boolean("shuffle", true);
  t.drop_last = trainer.boolean("drop_last", false);
  t.progress = trainer.string("progress", "auto");
  t.precision = trainer.string("precision", t.precision);
  // Text is an endless stream of windows: it trains for iterations, evaluated every 250 steps,
  // unless told otherwise.
  const bool text_data = d.format == "text";
  t.iterations = trainer.integer("iterations", text_data ? 2000 : 0);
  if (text_data && t.iterations == 0)
    fail(*trainer.raw("iterations"),
         "trainer.iterations must be at least 1 for text data: a stream of windows has no epochs");
  t.eval_every = trainer.integer("eval_every", text_data ? 250 : 0);
  t.eval_iters = trainer.integer("eval_iters", t.eval_iters);
  t.gradient_accumulation = trainer.integer("gradient_accumulation", 1);
  t.shards = trainer.integer("shards", 0);
  t.sample_every = trainer.integer("sample_every", 0);
  if (t.sample_every > 0 && !text_data)
    fail(*trainer.raw("sample_every"),
         "trainer.sample_every saves a language model's samples; it needs [data] format "
         "= \"text\"");
  trainer.finish();
  if (output_dir.empty())
    throw Error(fmt::format("{}: trainer.output_dir must not be empty", where));
  return t;
}

// What needs keys of several sections, each error at the line of the key that can fix it.
void check_across_sections(const RunConfig& c, const toml::table& root) {
  const auto at = [&](const char* section, const char* key) -> const toml::node* {
    const toml::table* table = root[section].as_table();
    return table ? table->get(key) : nullptr;
  };
  if (c.label_smoothing > 0 && c.loss != "cross_entropy")
    fail(*at("loss", "label_smoothing"), "loss.label_smoothing needs loss type \"cross_entropy\"");
  // A run for iterations knows its steps now; one for epochs only once the data is read.
  if (c.schedule.type == "cosine" && c.trainer.iterations > 0 &&
      c.schedule.warmup_steps > c.trainer.iterations)
    fail(*at("schedule", "warmup_steps"),
         fmt::format("schedule.warmup_steps {} is more than the run's {} steps "
                     "(trainer.iterations)",
                     c.schedule.warmup_steps, c.trainer.iterations));
}

}  // namespace

RunConfig parse_run_config(std::string_view text, const std::string& where,
                           const std::filesystem::path& base_dir,
                           const std::vector<std::string>& overrides) {
  toml::table root = parse_toml(text, where);
  for (const std::string& assignment : overrides) detail::apply_override(root, assignment);
  for (auto&& [key, node] : root) {
    const std::string k(key.str());
    const std::vector<std::string>& sections = config_sections();
    if (std::find(sections.begin(), sections.end(), k) == sections.end())
      fail(node, fmt::format("unknown section '{}'; allowed: {}", k, join(sections)));
    if (!node.is_table()) fail(node, fmt::format("'{}' must be a table ([{}])", k, k));
  }
  const auto section = [&](const char* name) {
    return Section(root[name].as_table(), name, base_dir);
  };

  RunConfig config;
  config.source = where;
  Section data = section("data"), preprocess = section("preprocess"), augment = section("augment"),
          model = section("model"), loss = section("loss"), optimizer = section("optimizer"),
          schedule = section("schedule"), trainer = section("trainer");
  config.data = read_data(data, where);
  config.preprocess = read_preprocess(preprocess, where);
  config.augment = read_augment(augment, config.preprocess, where);
  if (!model.present())
    throw Error(fmt::format("{}: missing [model] section with 'layers' or a model 'type'", where));
  config.model = read_model(model, where, config.model_sources);
  model.finish();
  check_model_input(config.model, config.data.format, *root["model"].as_table());
  config.loss = loss.string("type", "cross_entropy");
  config.label_smoothing = loss.number("label_smoothing", 0);
  loss.finish();
  config.optimizer = read_optimizer(optimizer, config.data);
  config.schedule = read_schedule(schedule, config.optimizer);
  config.trainer = read_trainer(trainer, config.data, where);
  check_across_sections(config, root);
  return config;
}

nlohmann::json DataConfig::table_json() const {
  const DataConfig defaults;
  nlohmann::json out = nlohmann::json::object();
  if (delimiter != defaults.delimiter) out["delimiter"] = delimiter;
  if (!categorical.empty()) out["categorical"] = categorical;
  if (!drop.empty()) out["drop"] = drop;
  if (missing_values != defaults.missing_values) out["missing_values"] = missing_values;
  if (impute != defaults.impute) out["impute"] = impute;
  if (impute_categorical != defaults.impute_categorical)
    out["impute_categorical"] = impute_categorical;
  if (!impute_columns.empty()) out["impute_columns"] = impute_columns;
  if (fill_value != defaults.fill_value) out["fill_value"] = fill_value;
  if (fill_category != defaults.fill_category) out["fill_category"] = fill_category;
  if (missing_indicator) out["missing_indicator"] = true;
  if (!missing_indicator_columns.empty()) out["missing_indicator"] = missing_indicator_columns;
  if (unknown_category != defaults.unknown_category) out["unknown_category"] = unknown_category;
  return out;
}

std::string config_reference() {
  return detail::config_reference_markdown();
}

nlohmann::json RunConfig::to_json() const {
  nlohmann::json resolved = {
      {"data",
       {{"format", data.format},
        {"train_images", data.train_images},
        {"train_labels", data.train_labels},
        {"test_images", data.test_images},
        {"test_labels", data.test_labels},
        {"path", data.path},
        {"tokenizer", data.tokenizer},
        {"vocab_size", data.vocab_size},
        {"target", data.target},
        {"dir", data.dir},
        {"test_fraction", data.test_fraction},
        {"validation_fraction", data.validation_fraction},
        {"seed", data.seed},
        {"class_names", data.class_names}}},
      {"preprocess",
       {{"scale", preprocess.scale},
        {"normalize_mean", preprocess.normalize_mean.value_or(0)},
        {"normalize_std", preprocess.normalize_std.value_or(1)},
        {"standardize", preprocess.standardize}}},
      {"augment",
       {{"random_crop_padding", augment.random_crop_padding},
        {"horizontal_flip", augment.horizontal_flip},
        {"random_erasing", augment.random_erasing},
        {"fill", augment.fill}}},
      {"model", model},
      {"loss", {{"type", loss}, {"label_smoothing", label_smoothing}}},
      {"optimizer",
       {{"type", optimizer.type},
        {"lr", optimizer.lr},
        {"momentum", optimizer.momentum},
        {"dampening", optimizer.dampening},
        {"nesterov", optimizer.nesterov},
        {"weight_decay", optimizer.weight_decay},
        {"beta1", optimizer.beta1},
        {"beta2", optimizer.beta2},
        {"eps", optimizer.eps},
        {"decay_matrices_only", optimizer.decay_matrices_only}}},
      {"schedule",
       {{"type", schedule.type},
        {"step_size", schedule.step_size},
        {"gamma", schedule.gamma},
        {"warmup_steps", schedule.warmup_steps},
        {"min_lr", schedule.min_lr}}},
      {"trainer",
       {{"epochs", trainer.epochs},
        {"batch_size", trainer.batch_size},
        {"eval_batch_size", trainer.eval_batch_size},
        {"log_every", trainer.log_every},
        {"output_dir", trainer.output_dir},
        {"seed", trainer.seed},
        {"early_stopping_patience", trainer.early_stopping_patience},
        {"clip_grad_norm", trainer.clip_grad_norm},
        {"shuffle", trainer.shuffle},
        {"drop_last", trainer.drop_last},
        {"progress", trainer.progress},
        {"precision", trainer.precision},
        {"iterations", trainer.iterations},
        {"eval_every", trainer.eval_every},
        {"eval_iters", trainer.eval_iters},
        {"gradient_accumulation", trainer.gradient_accumulation},
        {"shards", trainer.shards},
        {"sample_every", trainer.sample_every}}},
  };
  // Only when set, so the identity of a run from before these keys existed stays the same.
  const nlohmann::json table = data.table_json();
  for (const auto& [key, value] : table.items()) resolved["data"][key] = value;
  return resolved;
}

}  // namespace lathe
