// A bundle described: format, architecture with per-layer shapes and parameter counts, tensors,
// preprocessing, task and training metrics, as JSON and as text.
#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <memory>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lathe/autograd.h"
#include "lathe/error.h"
#include "lathe/io.h"
#include "lathe/predict_io.h"
#include "lathe/table.h"

namespace lathe {
namespace {

// Lists longer than this are summarized in text (count, range, first values).
constexpr std::size_t kListedValues = 6;

std::string metadata_or_null(const SafetensorsContents& contents, const std::string& key) {
  const auto found = contents.metadata.find(key);
  return found == contents.metadata.end() ? "" : found->second;
}

// The task's input shape, if it is a valid one.
std::optional<Shape> input_shape_of(const nlohmann::json& task) {
  if (!task.contains("input_shape") || !task["input_shape"].is_array()) return std::nullopt;
  Shape shape;
  for (const auto& dim : task["input_shape"]) {
    if (!dim.is_number_integer() || dim.get<std::int64_t>() <= 0) return std::nullopt;
    shape.push_back(dim.get<std::int64_t>());
  }
  if (shape.empty() || shape_numel(shape) > (std::int64_t{1} << 24)) return std::nullopt;
  return shape;
}

// One entry per layer: its type and arguments, its parameter count (from a layer rebuilt from
// its spec) and its output shape for one example (running the rebuilt layers on zeros).
nlohmann::json describe_layers(const nlohmann::json& architecture, const nlohmann::json& task) {
  const bool sequential = architecture.value("type", "") == "sequential" &&
                          architecture.contains("layers") && architecture["layers"].is_array();
  const nlohmann::json specs =
      sequential ? architecture["layers"] : nlohmann::json::array({architecture});
  std::optional<Shape> shape = input_shape_of(task);
  Tensor activation;
  if (shape) {
    Shape batch{1};
    batch.insert(batch.end(), shape->begin(), shape->end());
    activation = Tensor::zeros(batch);
  }
  NoGradGuard no_grad;
  Generator generator(0);
  nlohmann::json layers = nlohmann::json::array();
  for (std::size_t i = 0; i < specs.size(); ++i) {
    const nlohmann::json& spec = specs[i];
    nlohmann::json layer = {{"index", i}, {"type", spec.value("type", "?")}};
    nlohmann::json arguments = spec;
    arguments.erase("type");
    layer["arguments"] = arguments;
    layer["parameters"] = nullptr;
    layer["output_shape"] = nullptr;
    try {
      const std::shared_ptr<Module> module = make_layer(spec, generator);
      module->eval();
      layer["parameters"] = module->parameter_count();
      if (activation.defined()) {
        activation = module->forward(activation);
        layer["output_shape"] = Shape(activation.shape().begin() + 1, activation.shape().end());
      }
    } catch (const std::exception&) {
      activation = Tensor();  // shapes after a layer that does not run are unknown
    }
    layers.push_back(layer);
  }
  nlohmann::json out = {{"type", architecture.value("type", "?")}, {"layers", layers}};
  if (!sequential) out["arguments"] = layers[0]["arguments"];
  return out;
}

std::string number(double value) {
  return fmt::format("{:.6g}", value);
}

// "0.5" or "[0.1, 0.2, 0.3]" or "13 values in [-1.2, 3.4]: 0.1, 0.2, 0.3, ..."
std::string summarize(const std::vector<double>& values) {
  if (values.size() == 1) return number(values[0]);
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < std::min(values.size(), kListedValues); ++i)
    shown.push_back(number(values[i]));
  if (values.size() <= kListedValues) return fmt::format("[{}]", fmt::join(shown, ", "));
  const auto [low, high] = std::minmax_element(values.begin(), values.end());
  return fmt::format("{} values in [{}, {}]: {}, ...", values.size(), number(*low), number(*high),
                     fmt::join(shown, ", "));
}

std::string describe_preprocessing(const nlohmann::json& p) {
  const double scale = p.value("scale", 1.0);
  const auto mean = p.value("mean", std::vector<double>{0.0});
  const auto std = p.value("std", std::vector<double>{1.0});
  const bool identity = mean.size() == 1 && mean[0] == 0 && std.size() == 1 && std[0] == 1;
  std::vector<std::string> steps;
  if (scale != 1) steps.push_back(fmt::format("x * {}", number(scale)));
  if (!identity) {
    if (mean.size() == 1)
      steps.push_back(fmt::format("(x - {}) / {}", number(mean[0]), number(std[0])));
    else
      steps.push_back(
          fmt::format("standardize per feature: mean {}; std {}", summarize(mean), summarize(std)));
  }
  return steps.empty() ? "none" : fmt::format("{}", fmt::join(steps, ", then "));
}

// "accuracy 0.8805, loss 0.3367, validation.loss 0.35" for an object; the value otherwise.
void flatten_metrics(const nlohmann::json& value, const std::string& prefix,
                     std::vector<std::string>& out) {
  if (value.is_object()) {
    for (const auto& [key, inner] : value.items())
      flatten_metrics(inner, prefix.empty() ? key : prefix + "." + key, out);
    return;
  }
  const std::string text = value.is_number_float() ? number(value.get<double>()) : value.dump();
  out.push_back(prefix.empty() ? text : fmt::format("{} {}", prefix, text));
}

// A model that is not a Sequential on one line: its type and arguments, in the order its
// registered type declares them.
template <typename TextOf>
std::string one_line_architecture(const nlohmann::json& architecture, const TextOf& text_of) {
  const std::string type = architecture.value("type", "?");
  const nlohmann::json arguments = architecture.value("arguments", nlohmann::json::object());
  std::vector<std::string> keys;
  if (const LayerType* registered = find_layer_type(type))
    for (const LayerArgument& argument : registered->arguments)
      if (arguments.contains(argument.key)) keys.push_back(argument.key);
  for (const auto& [key, value] : arguments.items())
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  std::vector<std::string> fields;
  for (const std::string& key : keys) {
    const nlohmann::json& value = arguments[key];
    fields.push_back(key + " " +
                     (is_long_text_argument(value) ? layer_argument_text(value) : text_of(value)));
  }
  return fmt::format("{}: {}", type, fmt::join(fields, ", "));
}

}  // namespace

void check_bundle_signature(const std::filesystem::path& path) {
  if (has_model_file_reader(path)) return;  // another format (.onnx): its reader checks it
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> file(std::fopen(path.c_str(), "rb"),
                                                       &std::fclose);
  if (!file) throw Error(fmt::format("{}: cannot open: {}", path.string(), std::strerror(errno)));
  unsigned char start[9] = {};
  const std::size_t got = std::fread(start, 1, sizeof start, file.get());
  if (std::filesystem::is_directory(path) || got < sizeof start || start[8] != '{')
    throw Error(fmt::format(
        "{}: not a lathe bundle: not a safetensors file (expected an 8-byte header length and a "
        "JSON header; `lathe train` writes bundles as model.safetensors)",
        path.string()));
}

nlohmann::json describe_bundle(const std::filesystem::path& path) {
  // Another format with a registered reader (an .onnx file) is described as it loads.
  const bool bundle_file = !has_model_file_reader(path);
  check_bundle_signature(path);
  const LoadedBundle bundle = load_bundle(path);  // checks that it is a complete, valid bundle
  const SafetensorsContents contents = bundle_file ? load_safetensors(path) : SafetensorsContents{};
  nlohmann::json out;
  out["file"] = path.string();
  out["format"] = bundle_file ? nlohmann::json(metadata_or_null(contents, "format"))
                              : nlohmann::json(path.extension().string().substr(1) + " (imported)");
  out["lathe_version"] = metadata_or_null(contents, "lathe.version");
  out["architecture"] = describe_layers(bundle.info.architecture, bundle.info.task);
  const bool language_model = is_language_model(bundle.info);
  if (language_model) {
    // The tokenizer summarized (the vocabulary or merges themselves stay in the bundle).
    const LanguageModel lm = as_language_model(bundle, path.string());
    out["tokenizer"] = {{"kind", lm.tokenizer->kind()}, {"vocab_size", lm.tokenizer->vocab_size()}};
  }
  out["parameters"] = bundle.model->parameter_count();
  nlohmann::json tensors = nlohmann::json::array();
  std::vector<NamedTensor> named = bundle.model->named_parameters();
  const std::vector<NamedTensor> buffers = bundle.model->named_buffers();
  named.insert(named.end(), buffers.begin(), buffers.end());
  // The saved forms (Linear's [out, in]), from the file or, for another format, the model's own.
  const std::map<std::string, Tensor> saved =
      bundle_file ? contents.tensors : bundle.model->state_dict();
  for (const auto& entry : named) {
    const auto stored = saved.find(entry.name);
    const Tensor& tensor = stored != saved.end() ? stored->second : entry.tensor;
    tensors.push_back({{"name", entry.name},
                       {"dtype", dtype_name(tensor.dtype())},
                       {"shape", tensor.shape()},
                       {"elements", tensor.numel()}});
  }
  out["tensors"] = tensors;
  out["preprocessing"] = bundle.info.preprocessing.to_json();
  out["task"] = bundle.info.task;
  if (language_model) out["task"].erase("tokenizer");  // summarized above
  out["metrics"] = bundle.info.metrics;
  return out;
}

std::string format_bundle_description(const nlohmann::json& d) {
  std::string out;
  const auto line = [&out](const std::string& label, const std::string& text) {
    fmt::format_to(std::back_inserter(out), "{:<15}{}\n", label + ":", text);
  };
  const auto text_of = [](const nlohmann::json& value) {
    return value.is_string() ? value.get<std::string>() : value.dump();
  };
  line("Bundle", d.value("file", ""));
  const std::string version = d.value("lathe_version", "");
  line("Format", d.value("format", "") +
                     (version.empty() ? "" : fmt::format(" (written by lathe {})", version)));

  const nlohmann::json task = d.value("task", nlohmann::json::object());
  std::string kind = task.contains("task") ? text_of(task["task"]) : "classification";
  if (task.contains("loss")) kind += fmt::format(", loss {}", text_of(task["loss"]));
  if (task.contains("format")) kind += fmt::format(", trained on {} data", text_of(task["format"]));
  line("Task", kind);
  if (task.contains("input_shape")) line("Input shape", task["input_shape"].dump());
  if (task.contains("features") && task["features"].is_array()) {
    std::vector<std::string> names;
    for (const auto& f : task["features"]) names.push_back(text_of(f));
    line(fmt::format("Features ({})", names.size()), fmt::format("{}", fmt::join(names, ", ")));
  }
  if (task.contains("target")) line("Target", text_of(task["target"]));
  if (task.contains("classes") && task["classes"].is_array()) {
    std::vector<std::string> names;
    for (const auto& c : task["classes"]) names.push_back(text_of(c));
    line(fmt::format("Classes ({})", names.size()), fmt::format("{}", fmt::join(names, ", ")));
  }
  // A model trained on a table: how each column becomes features, and the rows it held out.
  if (task.contains("encoding")) {
    try {
      const TableEncoding encoding = TableEncoding::from_json(task["encoding"]);
      if (encoding.identity())
        line("Encoding", fmt::format("{} numeric columns, as they are (missing values are an "
                                     "error)",
                                     encoding.columns().size()));
      else
        line("Encoding",
             fmt::format("{} features from {} columns; unknown categories: {}; missing "
                         "values: {}",
                         encoding.width(), encoding.columns().size(),
                         encoding.unknown_category() == "ignore" ? "all zeros" : "error",
                         text_of(nlohmann::json(encoding.missing_values()))));
      if (!encoding.identity())
        for (const std::string& column : encoding.describe()) out += "  " + column + "\n";
    } catch (const Error& e) {
      line("Encoding", fmt::format("unreadable: {}", e.what()));
    }
  }
  if (const nlohmann::json split = task.value("split", nlohmann::json()); split.is_object())
    line("Split", fmt::format("{} rows of {} (SHA-256 {}), seed {}: test {}, validation {}",
                              text_of(split.value("rows", nlohmann::json("?"))),
                              text_of(split.value("file", nlohmann::json("?"))),
                              text_of(split.value("sha256", nlohmann::json("?"))),
                              text_of(split.value("seed", nlohmann::json("?"))),
                              text_of(split.value("test_fraction", nlohmann::json("?"))),
                              text_of(split.value("validation_fraction", nlohmann::json("?")))));

  const nlohmann::json architecture = d.value("architecture", nlohmann::json::object());
  const bool language_model = d.contains("tokenizer");
  if (language_model) {
    const nlohmann::json tokenizer = d["tokenizer"];
    line("Tokenizer",
         fmt::format("{}, {} tokens", text_of(tokenizer.value("kind", nlohmann::json("?"))),
                     text_of(tokenizer.value("vocab_size", nlohmann::json("?")))));
  }
  if (architecture.value("type", "") != "sequential") {
    line("Architecture", one_line_architecture(architecture, text_of));
    line("Parameters", text_of(d.value("parameters", nlohmann::json("?"))));
  } else {
    const nlohmann::json layers = architecture.value("layers", nlohmann::json::array());
    line("Architecture", fmt::format("{}, {} layer{}", architecture.value("type", "?"),
                                     layers.size(), layers.size() == 1 ? "" : "s"));
    std::vector<std::array<std::string, 4>> rows{{"#", "layer", "output", "parameters"}};
    for (const auto& layer : layers) {
      std::vector<std::string> arguments;
      const nlohmann::json given = layer.value("arguments", nlohmann::json::object());
      for (const auto& [key, value] : given.items())
        arguments.push_back(fmt::format("{}={}", key, text_of(value)));
      const std::string type = layer.value("type", "?");
      const nlohmann::json output = layer.value("output_shape", nlohmann::json());
      const nlohmann::json parameters = layer.value("parameters", nlohmann::json());
      rows.push_back(
          {std::to_string(layer.value("index", 0)),
           arguments.empty() ? type : fmt::format("{}({})", type, fmt::join(arguments, ", ")),
           output.is_array() ? shape_str(output.get<Shape>()) : "?",
           parameters.is_number() ? parameters.dump() : "?"});
    }
    std::array<std::size_t, 4> widths{};
    for (const auto& row : rows)
      for (std::size_t c = 0; c < 4; ++c) widths[c] = std::max(widths[c], row[c].size());
    for (const auto& row : rows)
      fmt::format_to(std::back_inserter(out), "  {:>{}}  {:<{}}  {:<{}}  {:>{}}\n", row[0],
                     widths[0], row[1], widths[1], row[2], widths[2], row[3], widths[3]);
    line("Parameters", text_of(d.value("parameters", nlohmann::json("?"))));
  }

  const nlohmann::json tensors = d.value("tensors", nlohmann::json::array());
  line("Tensors", std::to_string(tensors.size()));
  std::size_t name_width = 0;
  for (const auto& t : tensors) name_width = std::max(name_width, t.value("name", "").size());
  for (const auto& t : tensors)
    fmt::format_to(std::back_inserter(out), "  {:<{}}  {}  {}\n", t.value("name", ""), name_width,
                   t.value("dtype", ""), shape_str(t.value("shape", Shape{})));

  if (!language_model)
    line("Preprocessing",
         describe_preprocessing(d.value("preprocessing", nlohmann::json::object())));
  const nlohmann::json metrics = d.value("metrics", nlohmann::json::object());
  if (metrics.empty()) {
    line("Metrics", "none recorded");
  } else {
    out += "Metrics:\n";
    for (const auto& [key, value] : metrics.items()) {
      std::vector<std::string> parts;
      flatten_metrics(value, "", parts);
      fmt::format_to(std::back_inserter(out), "  {}: {}\n", key, fmt::join(parts, ", "));
    }
  }
  return out;
}

}  // namespace lathe
