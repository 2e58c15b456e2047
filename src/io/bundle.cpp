// Model bundles: one safetensors file with the weights and, in __metadata__, the architecture,
// preprocessing, task description and metrics as JSON strings.
//
// A bundle may come from anywhere, so the architecture is checked against the tensors before
// the model is built (the layer registry says what tensors each type holds): building allocates
// every parameter the architecture names, and a hostile architecture (a linear layer of 10^6 x
// 10^6) must not allocate more than the file holds. Where the task names the input shape, the
// shape after every layer is bounded as well (convolution padding and dilation of a hostile CNN).
#include <fmt/format.h>

#include <mutex>

#include "lathe/bundle.h"
#include "lathe/error.h"
#include "lathe/version.h"
#include "src/io/file_bytes.h"
#include "src/io/untrusted_json.h"

namespace lathe {
namespace {

using nlohmann::json;

constexpr const char* kFormat = "lathe.bundle/1";
// JSON nesting allowed in metadata values: enough for any task or metrics description, and small
// enough that code recursing over them (dump, copy) cannot run out of stack.
constexpr int kMaxMetadataDepth = 64;

json parse_metadata(const SafetensorsContents& contents, const std::string& key,
                    const std::string& where) {
  auto found = contents.metadata.find(key);
  if (found == contents.metadata.end())
    throw Error(fmt::format("{}: not a lathe bundle: metadata '{}' is missing", where, key));
  return detail::parse_untrusted_json(found->second, fmt::format("{}: metadata '{}'", where, key),
                                      kMaxMetadataDepth);
}

// Every tensor the architecture needs, with its shape and a float dtype, and no other.
void check_tensors(const std::map<std::string, Shape>& expected,
                   const std::map<std::string, Tensor>& tensors, const std::string& where) {
  for (const auto& [name, shape] : expected) {
    const auto found = tensors.find(name);
    if (found == tensors.end())
      throw Error(fmt::format("{}: tensor '{}' of shape {} that the architecture needs is missing",
                              where, name, shape_str(shape)));
    if (found->second.shape() != shape)
      throw Error(fmt::format("{}: tensor '{}': shape {} but the architecture needs {}", where,
                              name, shape_str(found->second.shape()), shape_str(shape)));
    if (found->second.dtype() != DType::Float32)
      throw Error(fmt::format(
          "{}: tensor '{}': dtype {} but model weights are float32 (F32, F16 or BF16 in the file)",
          where, name, dtype_name(found->second.dtype())));
  }
  for (const auto& [name, tensor] : tensors)
    if (!expected.count(name))
      throw Error(fmt::format("{}: tensor '{}' ({}) is not part of the architecture", where,
                              detail::printable(name), shape_str(tensor.shape())));
}

// A language model's tokenizer, checked against the model it comes with.
std::shared_ptr<const Tokenizer> read_tokenizer(const BundleInfo& info, const Module& model,
                                                const std::string& where) {
  const auto* language_model = dynamic_cast<const CausalLanguageModel*>(&model);
  if (!language_model)
    throw Error(
        fmt::format("{}: metadata 'lathe.task' says language_model but the model (type "
                    "'{}') is not a causal language model",
                    where, model.type()));
  if (!info.task.contains("tokenizer"))
    throw Error(
        fmt::format("{}: metadata 'lathe.task': a language model needs a \"tokenizer\"", where));
  std::shared_ptr<const Tokenizer> tokenizer;
  try {
    tokenizer = tokenizer_from_json(info.task.at("tokenizer"));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: metadata 'lathe.task': {}", where, e.what()));
  }
  if (tokenizer->vocab_size() != language_model->vocab_size())
    throw Error(fmt::format("{}: the tokenizer has {} tokens but the model's vocab_size is {}",
                            where, tokenizer->vocab_size(), language_model->vocab_size()));
  return tokenizer;
}

// Where the task gives the shape of one example, the shape after every layer, each bounded.
void check_activations(const BundleInfo& info, const std::string& where) {
  if (!info.task.contains("input_shape") || !info.task["input_shape"].is_array()) return;
  Shape input;
  for (const json& d : info.task["input_shape"]) {
    if (!d.is_number_unsigned() || d.get<std::uint64_t>() == 0 ||
        d.get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxActivationValues))
      throw Error(fmt::format("{}: metadata 'lathe.task': input_shape {} is not a shape", where,
                              detail::shown_json(info.task["input_shape"])));
    input.push_back(d.get<std::int64_t>());
  }
  if (shape_numel(input) > kMaxActivationValues)
    throw Error(
        fmt::format("{}: metadata 'lathe.task': an example of shape {} is larger than {} "
                    "values",
                    where, shape_str(input), kMaxActivationValues));
  ShapeTrace trace;
  try {
    trace = trace_shapes(info.architecture, input);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: metadata 'lathe.architecture' does not fit input_shape {}: {}",
                            where, shape_str(input), e.what()));
  }
  for (std::size_t i = 0; i < trace.outputs.size(); ++i)
    if (shape_numel(trace.outputs[i]) > kMaxActivationValues)
      throw Error(
          fmt::format("{}: metadata 'lathe.architecture': layer {} (counting leaf layers) "
                      "maps one example of shape {} to {} values ({}), more than the {} "
                      "a bundle may ask for",
                      where, i, shape_str(input), shape_numel(trace.outputs[i]),
                      shape_str(trace.outputs[i]), kMaxActivationValues));
}

}  // namespace

bool is_language_model(const BundleInfo& info) {
  return info.task.is_object() && info.task.contains("task") &&
         info.task["task"] == "language_model";
}

void save_language_model(const std::filesystem::path& path, const CausalLanguageModel& model,
                         const Tokenizer& tokenizer, const nlohmann::json& metrics) {
  if (tokenizer.vocab_size() != model.vocab_size())
    throw Error(fmt::format("save: the tokenizer has {} tokens but the model's vocab_size is {}",
                            tokenizer.vocab_size(), model.vocab_size()));
  BundleInfo info;
  info.architecture = model.spec();
  info.task = {{"task", "language_model"}, {"tokenizer", tokenizer.to_json()}};
  info.metrics = metrics;
  save_bundle(path, model, info);
}

LanguageModel as_language_model(const LoadedBundle& bundle, const std::string& where) {
  if (!is_language_model(bundle.info))
    throw Error(fmt::format("{}: not a language model (its task is {})", where,
                            bundle.info.task.value("task", std::string("classification"))));
  LanguageModel lm;
  lm.model = std::dynamic_pointer_cast<CausalLanguageModel>(bundle.model);
  lm.tokenizer = read_tokenizer(bundle.info, *bundle.model, where);
  lm.info = bundle.info;
  return lm;
}

LanguageModel load_language_model(const std::filesystem::path& path) {
  return as_language_model(load_bundle(path), path.string());
}

void save_bundle(const std::filesystem::path& path, const Module& model, const BundleInfo& info) {
  if (const std::optional<std::string> why = why_not_rebuildable(model))
    throw Error(fmt::format("save_bundle {}: {}", path.string(), *why));
  std::map<std::string, std::string> metadata{
      {"format", kFormat},
      {"lathe.version", version()},
      {"lathe.architecture", info.architecture.dump()},
      {"lathe.preprocessing", info.preprocessing.to_json().dump()},
      {"lathe.task", info.task.dump()},
      {"lathe.metrics", info.metrics.dump()},
  };
  save_safetensors(path, model.state_dict(), metadata);
}

namespace {

std::mutex& model_file_readers_mutex() {
  static std::mutex mutex;
  return mutex;
}

std::map<std::string, ModelFileReader>& model_file_readers() {
  static std::map<std::string, ModelFileReader> readers;
  return readers;
}

ModelFileReader model_file_reader(const std::filesystem::path& path) {
  std::string extension = path.extension().string();
  for (char& c : extension) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const std::lock_guard lock(model_file_readers_mutex());
  auto it = model_file_readers().find(extension);
  return it == model_file_readers().end() ? ModelFileReader() : it->second;
}

}  // namespace

void register_model_file_reader(const std::string& extension, ModelFileReader reader) {
  const std::lock_guard lock(model_file_readers_mutex());
  model_file_readers()[extension] = std::move(reader);
}

bool has_model_file_reader(const std::filesystem::path& path) {
  return static_cast<bool>(model_file_reader(path));
}

LoadedBundle load_bundle(const std::filesystem::path& path) {
  if (const ModelFileReader reader = model_file_reader(path)) return reader(path);
  const std::vector<unsigned char> file = detail::read_raw_file(path, std::uint64_t{1} << 40);
  return parse_bundle(detail::as_chars(file), path.string());
}

LoadedBundle parse_bundle(std::string_view bytes, const std::string& where) {
  const SafetensorsContents contents = parse_safetensors(bytes, where);
  auto format = contents.metadata.find("format");
  if (format == contents.metadata.end() || format->second != kFormat)
    throw Error(
        fmt::format("{}: not a lathe bundle (metadata 'format' is not '{}')", where, kFormat));
  LoadedBundle bundle;
  bundle.info.architecture = parse_metadata(contents, "lathe.architecture", where);
  try {
    bundle.info.preprocessing =
        Preprocessing::from_json(parse_metadata(contents, "lathe.preprocessing", where));
  } catch (const Error& e) {
    if (std::string_view(e.what()).starts_with(where)) throw;
    throw Error(fmt::format("{}: metadata 'lathe.preprocessing': {}", where, e.what()));
  }
  bundle.info.task = parse_metadata(contents, "lathe.task", where);
  bundle.info.metrics = parse_metadata(contents, "lathe.metrics", where);
  const auto require_object = [&](const json& value, const char* key) {
    if (!value.is_object() && !value.is_null())
      throw Error(fmt::format("{}: metadata '{}' is {}, not a JSON object", where, key,
                              detail::shown_json(value)));
  };
  require_object(bundle.info.task, "lathe.task");
  require_object(bundle.info.metrics, "lathe.metrics");
  if (bundle.info.task.is_null()) bundle.info.task = json::object();
  if (bundle.info.task.contains("task") && !bundle.info.task["task"].is_string())
    throw Error(fmt::format("{}: metadata 'lathe.task': \"task\" is not a string", where));

  std::map<std::string, Shape> expected;
  try {
    expected = spec_tensor_shapes(bundle.info.architecture);
  } catch (const Error& e) {
    const bool unknown_type =
        std::string_view(e.what()).find("unknown layer type") != std::string_view::npos;
    throw Error(fmt::format("{}: metadata 'lathe.architecture': {}{}", where, e.what(),
                            unknown_type ? "; a program's own type loads where it is registered "
                                           "(the lathe command: --plugin LIBRARY, "
                                           "docs/custom_modules.md)"
                                         : ""));
  }
  check_tensors(expected, contents.tensors, where);
  check_activations(bundle.info, where);

  Generator unused(0);  // weights are overwritten by the saved ones
  try {
    bundle.model = make_layer(bundle.info.architecture, unused);
    bundle.model->load_state_dict(contents.tensors);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
  if (is_language_model(bundle.info)) read_tokenizer(bundle.info, *bundle.model, where);
  bundle.model->eval();
  return bundle;
}

}  // namespace lathe
