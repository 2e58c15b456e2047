// Model bundles: one safetensors file with the weights and, in __metadata__, the architecture,
// preprocessing, task description and metrics as JSON strings.
//
// A bundle may come from anywhere, so the architecture is checked against the tensors before
// the model is built: building allocates every parameter the architecture names, and a hostile
// architecture (a linear layer of 10^6 x 10^6) must not allocate more than the file holds.
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/io.h"
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
// Sequential models inside sequential models.
constexpr int kMaxModelDepth = 16;

json parse_metadata(const SafetensorsContents& contents, const std::string& key,
                    const std::string& where) {
  auto found = contents.metadata.find(key);
  if (found == contents.metadata.end())
    throw Error(fmt::format("{}: not a lathe bundle: metadata '{}' is missing", where, key));
  return detail::parse_untrusted_json(found->second, fmt::format("{}: metadata '{}'", where, key),
                                      kMaxMetadataDepth);
}

// The tensors a model built from `spec` holds (name -> shape), from the spec alone: the names and
// shapes Module::state_dict() will have. `prefix` is the dotted name of the layer ("" or "0.").
class ExpectedTensors {
 public:
  explicit ExpectedTensors(std::string where) : where_(std::move(where)) {}

  void add(const json& spec, const std::string& prefix, int depth) {
    if (depth > kMaxModelDepth)
      throw fail(prefix, fmt::format("sequential layers nest deeper than {}", kMaxModelDepth));
    if (spec.is_object() && spec.contains("type") && spec["type"] == "sequential") {
      const auto layers = spec.find("layers");
      if (layers == spec.end() || !layers->is_array() || layers->empty())
        throw fail(prefix, "a sequential model needs a non-empty list \"layers\"");
      for (std::size_t i = 0; i < layers->size(); ++i)
        add((*layers)[i], prefix + std::to_string(i) + ".", depth + 1);
      return;
    }
    json args;
    try {
      args = validate_layer_spec(spec);
    } catch (const LayerSpecError& e) {
      throw fail(prefix, e.what());
    }
    const std::string type = args["type"].get<std::string>();
    if (type == "linear") {
      const std::int64_t in = positive(args, "in", prefix);
      const std::int64_t out = positive(args, "out", prefix);
      tensors_[prefix + "weight"] = {out, in};
      if (args["bias"].get<bool>()) tensors_[prefix + "bias"] = {out};
    } else if (type == "conv2d") {
      const std::int64_t in = positive(args, "in", prefix);
      const std::int64_t out = positive(args, "out", prefix);
      const std::int64_t k = positive(args, "kernel_size", prefix);
      const std::int64_t groups = positive(args, "groups", prefix);
      if (in % groups != 0)
        throw fail(prefix, fmt::format("conv2d groups {} does not divide in {}", groups, in));
      tensors_[prefix + "weight"] = {out, in / groups, k, k};
      if (args["bias"].get<bool>()) tensors_[prefix + "bias"] = {out};
    } else if (type == "batch_norm1d" || type == "batch_norm2d") {
      const std::int64_t features = positive(args, "features", prefix);
      for (const char* name : {"weight", "bias", "running_mean", "running_var"})
        tensors_[prefix + name] = {features};
    } else if (type != "flatten" && type != "dropout" && type != "relu" && type != "leaky_relu" &&
               type != "sigmoid" && type != "tanh" && type != "gelu" && type != "max_pool2d" &&
               type != "avg_pool2d" && type != "global_avg_pool" && type != "reshape") {
      // A layer type added to the registry needs a line here (tests/test_safetensors_hostile.cpp
      // checks that every registered type loads from a bundle).
      throw fail(prefix, fmt::format("the bundle reader does not know the tensors of layer type "
                                     "'{}'",
                                     type));
    }
  }

  const std::map<std::string, Shape>& tensors() const { return tensors_; }

 private:
  Error fail(const std::string& prefix, const std::string& why) const {
    const std::string layer = prefix.empty() ? "" : "layer " + prefix.substr(0, prefix.size() - 1);
    return Error(fmt::format("{}: metadata 'lathe.architecture': {}{}", where_, layer,
                             layer.empty() ? why : ": " + why));
  }

  std::int64_t positive(const json& args, const char* key, const std::string& prefix) const {
    const json& value = args[key];
    if (!value.is_number_unsigned() || value.get<std::uint64_t>() == 0 ||
        value.get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX))
      throw fail(prefix,
                 fmt::format("{} '{}' is {}, not a positive integer",
                             args["type"].get<std::string>(), key, detail::shown_json(value)));
    return value.get<std::int64_t>();
  }

  std::string where_;
  std::map<std::string, Shape> tensors_;
};

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

// A GPT and its tokenizer, each checked before anything is allocated for the model.
std::shared_ptr<GPT> read_language_model(const BundleInfo& info,
                                         const std::map<std::string, Tensor>& tensors,
                                         const std::string& where) {
  GPTConfig config;
  try {
    config = GPTConfig::from_json(info.architecture);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: metadata 'lathe.architecture': {}", where, e.what()));
  }
  if (!info.task.contains("tokenizer"))
    throw Error(
        fmt::format("{}: metadata 'lathe.task': a language model needs a \"tokenizer\"", where));
  std::unique_ptr<Tokenizer> tokenizer;
  try {
    tokenizer = tokenizer_from_json(info.task.at("tokenizer"));
  } catch (const Error& e) {
    throw Error(fmt::format("{}: metadata 'lathe.task': {}", where, e.what()));
  }
  if (tokenizer->vocab_size() != config.vocab_size)
    throw Error(fmt::format("{}: the tokenizer has {} tokens but the model's vocab_size is {}",
                            where, tokenizer->vocab_size(), config.vocab_size));
  const auto shapes = config.parameter_shapes();
  check_tensors({shapes.begin(), shapes.end()}, tensors, where);
  Generator unused(0);
  auto model = std::make_shared<GPT>(config, unused);
  try {
    model->load_state_dict(tensors);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
  model->eval();
  return model;
}

}  // namespace

bool is_language_model(const BundleInfo& info) {
  return info.task.is_object() && info.task.contains("task") &&
         info.task["task"] == "language_model";
}

void save_language_model(const std::filesystem::path& path, const GPT& model,
                         const Tokenizer& tokenizer, const nlohmann::json& metrics) {
  if (tokenizer.vocab_size() != model.config().vocab_size)
    throw Error(fmt::format("save: the tokenizer has {} tokens but the model's vocab_size is {}",
                            tokenizer.vocab_size(), model.config().vocab_size));
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
  lm.model = std::dynamic_pointer_cast<GPT>(bundle.model);
  lm.tokenizer = tokenizer_from_json(bundle.info.task.at("tokenizer"));
  lm.info = bundle.info;
  return lm;
}

LanguageModel load_language_model(const std::filesystem::path& path) {
  return as_language_model(load_bundle(path), path.string());
}

void save_bundle(const std::filesystem::path& path, const Module& model, const BundleInfo& info) {
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

LoadedBundle load_bundle(const std::filesystem::path& path) {
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

  Generator unused(0);  // weights are overwritten by the saved ones
  if (is_language_model(bundle.info)) {
    bundle.model = read_language_model(bundle.info, contents.tensors, where);
    return bundle;
  }
  ExpectedTensors expected(where);
  expected.add(bundle.info.architecture, "", 0);
  check_tensors(expected.tensors(), contents.tensors, where);

  try {
    bundle.model = make_layer(bundle.info.architecture, unused);
    bundle.model->load_state_dict(contents.tensors);
  } catch (const Error& e) {
    throw Error(fmt::format("{}: {}", where, e.what()));
  }
  bundle.model->eval();
  return bundle;
}

}  // namespace lathe
