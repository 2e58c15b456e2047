// The layer registry: every layer a config or bundle can name, with its arguments.
#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/nn.h"
#include "lathe/ops.h"

namespace lathe {
namespace {

using Kind = LayerArgument::Kind;
using nlohmann::json;

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Integer:
      return "an integer";
    case Kind::Number:
      return "a number";
    case Kind::Boolean:
      return "true or false";
    case Kind::String:
      return "a string";
    case Kind::IntegerList:
      return "a list of integers";
  }
  return "?";
}

bool has_kind(const json& value, Kind kind) {
  switch (kind) {
    case Kind::Integer:
      return value.is_number_integer();
    case Kind::Number:
      return value.is_number();
    case Kind::Boolean:
      return value.is_boolean();
    case Kind::String:
      return value.is_string();
    case Kind::IntegerList:
      if (!value.is_array()) return false;
      for (const json& item : value)
        if (!item.is_number_integer()) return false;
      return true;
  }
  return false;
}

std::shared_ptr<Module> activation(const std::string& type,
                                   std::function<Tensor(const Tensor&)> function,
                                   json spec = json::object()) {
  return std::make_shared<Activation>(type, std::move(function), std::move(spec));
}

std::vector<LayerArgument> pool_arguments() {
  return {{"kernel_size", Kind::Integer, true, nullptr, "window height and width"},
          {"stride", Kind::Integer, false, nullptr, "step between windows (default: kernel_size)"},
          {"padding", Kind::Integer, false, 0, "added on every side, at most kernel_size / 2"}};
}

std::shared_ptr<Module> pool(Pool2d::Kind kind, const json& a) {
  const auto kernel = a["kernel_size"].get<std::int64_t>();
  const std::int64_t stride = a.contains("stride") ? a["stride"].get<std::int64_t>() : kernel;
  return std::make_shared<Pool2d>(kind, kernel, stride, a["padding"].get<std::int64_t>());
}

std::vector<LayerArgument> batch_norm_arguments() {
  return {{"features", Kind::Integer, true, nullptr, "channels (axis 1)"},
          {"eps", Kind::Number, false, 1e-5, "added to the variance"},
          {"momentum", Kind::Number, false, 0.1, "weight of a batch in the running statistics"}};
}

std::shared_ptr<Module> batch_norm_layer(int spatial_dims, const json& a) {
  return std::make_shared<BatchNorm>(spatial_dims, a["features"].get<std::int64_t>(),
                                     a["eps"].get<double>(), a["momentum"].get<double>());
}

std::vector<LayerType> build_registry() {
  return {
      {"linear",
       "fully connected: y = x W^T + b",
       {{"in", Kind::Integer, true, nullptr, "input features"},
        {"out", Kind::Integer, true, nullptr, "output features"},
        {"bias", Kind::Boolean, false, true, "learn a bias"}},
       [](const json& a, Generator& g) -> std::shared_ptr<Module> {
         return std::make_shared<Linear>(a["in"].get<std::int64_t>(), a["out"].get<std::int64_t>(),
                                         a["bias"].get<bool>(), g);
       }},
      {"conv2d",
       "2-D convolution of [N, C, H, W] (square kernel)",
       {{"in", Kind::Integer, true, nullptr, "input channels"},
        {"out", Kind::Integer, true, nullptr, "output channels"},
        {"kernel_size", Kind::Integer, true, nullptr, "kernel height and width"},
        {"stride", Kind::Integer, false, 1, "step between windows"},
        {"padding", Kind::Integer, false, 0, "zeros added on every side"},
        {"dilation", Kind::Integer, false, 1, "spacing between kernel taps"},
        {"groups", Kind::Integer, false, 1, "channel groups (in and out must be multiples)"},
        {"bias", Kind::Boolean, false, true, "learn a bias"}},
       [](const json& a, Generator& g) -> std::shared_ptr<Module> {
         const Conv2d::Options options{
             a["kernel_size"].get<std::int64_t>(), a["stride"].get<std::int64_t>(),
             a["padding"].get<std::int64_t>(),     a["dilation"].get<std::int64_t>(),
             a["groups"].get<std::int64_t>(),      a["bias"].get<bool>()};
         return std::make_shared<Conv2d>(a["in"].get<std::int64_t>(), a["out"].get<std::int64_t>(),
                                         options, g);
       }},
      {"max_pool2d", "the maximum of each window of [N, C, H, W]", pool_arguments(),
       [](const json& a, Generator&) { return pool(Pool2d::Kind::Max, a); }},
      {"avg_pool2d", "the mean of each window of [N, C, H, W] (padding counts as zeros)",
       pool_arguments(), [](const json& a, Generator&) { return pool(Pool2d::Kind::Average, a); }},
      {"global_avg_pool",
       "[N, C, H, W] -> [N, C], the mean of each channel",
       {},
       [](const json&, Generator&) -> std::shared_ptr<Module> {
         return std::make_shared<GlobalAvgPool>();
       }},
      {"batch_norm1d", "batch normalization of [N, C] or [N, C, L]", batch_norm_arguments(),
       [](const json& a, Generator&) { return batch_norm_layer(1, a); }},
      {"batch_norm2d", "batch normalization of [N, C, H, W]", batch_norm_arguments(),
       [](const json& a, Generator&) { return batch_norm_layer(2, a); }},
      {"reshape",
       "[N, ...] -> [N, shape...]",
       {{"shape", Kind::IntegerList, true, nullptr, "the shape of one example, e.g. [1, 28, 28]"}},
       [](const json& a, Generator&) -> std::shared_ptr<Module> {
         return std::make_shared<Reshape>(a["shape"].get<Shape>());
       }},
      {"flatten",
       "[N, ...] -> [N, features]",
       {},
       [](const json&, Generator&) -> std::shared_ptr<Module> {
         return std::make_shared<Flatten>();
       }},
      {"dropout",
       "zero elements with probability p while training",
       {{"p", Kind::Number, false, 0.5, "drop probability"}},
       [](const json& a, Generator&) -> std::shared_ptr<Module> {
         return std::make_shared<Dropout>(a["p"].get<double>());
       }},
      {"relu",
       "max(x, 0)",
       {},
       [](const json&, Generator&) {
         return activation("relu", [](const Tensor& x) { return relu(x); });
       }},
      {"leaky_relu",
       "x if x > 0 else slope * x",
       {{"negative_slope", Kind::Number, false, 0.01, "slope for x < 0"}},
       [](const json& a, Generator&) {
         const double slope = a["negative_slope"].get<double>();
         return activation("leaky_relu", [slope](const Tensor& x) { return leaky_relu(x, slope); },
                           {{"negative_slope", slope}});
       }},
      {"sigmoid",
       "1 / (1 + exp(-x))",
       {},
       [](const json&, Generator&) {
         return activation("sigmoid", [](const Tensor& x) { return sigmoid(x); });
       }},
      {"tanh",
       "hyperbolic tangent",
       {},
       [](const json&, Generator&) {
         return activation("tanh", [](const Tensor& x) { return tanh(x); });
       }},
      {"gelu",
       "x * Phi(x); approximate = \"tanh\" for the tanh form",
       {{"approximate", Kind::String, false, "none", "\"none\" or \"tanh\""}},
       [](const json& a, Generator&) {
         const std::string approximate = a["approximate"].get<std::string>();
         if (approximate != "none" && approximate != "tanh")
           throw LayerSpecError("approximate", fmt::format("layer 'gelu': approximate must be "
                                                           "\"none\" or \"tanh\", got \"{}\"",
                                                           approximate));
         const auto mode =
             approximate == "tanh" ? GeluApproximation::Tanh : GeluApproximation::None;
         return activation("gelu", [mode](const Tensor& x) { return gelu(x, mode); },
                           {{"approximate", approximate}});
       }},
  };
}

std::string known_types() {
  std::vector<std::string> names;
  for (const LayerType& t : layer_types()) names.push_back(t.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

const std::vector<LayerType>& layer_types() {
  static const std::vector<LayerType> registry = build_registry();
  return registry;
}

json validate_layer_spec(const json& spec) {
  if (!spec.is_object()) throw LayerSpecError("", "a layer must be a table with a \"type\" key");
  if (!spec.contains("type") || !spec["type"].is_string())
    throw LayerSpecError("type",
                         fmt::format("a layer needs a \"type\" (one of: {})", known_types()));
  const std::string type = spec["type"].get<std::string>();
  const LayerType* found = nullptr;
  for (const LayerType& t : layer_types())
    if (t.name == type) found = &t;
  if (!found)
    throw LayerSpecError(
        "type", fmt::format("unknown layer type '{}'; known types: {}", type, known_types()));
  json args = json::object();
  args["type"] = type;
  for (const auto& [key, value] : spec.items()) {
    if (key == "type") continue;
    const LayerArgument* argument = nullptr;
    for (const LayerArgument& a : found->arguments)
      if (a.key == key) argument = &a;
    if (!argument) {
      std::vector<std::string> allowed;
      for (const LayerArgument& a : found->arguments) allowed.push_back(a.key);
      throw LayerSpecError(
          key,
          fmt::format("layer '{}': unknown key '{}'; allowed: {}", type, key,
                      allowed.empty() ? "(none)" : fmt::format("{}", fmt::join(allowed, ", "))));
    }
    if (!has_kind(value, argument->kind))
      throw LayerSpecError(key, fmt::format("layer '{}': '{}' must be {}, got {}", type, key,
                                            kind_name(argument->kind), value.dump()));
    args[key] = value;
  }
  for (const LayerArgument& a : found->arguments) {
    if (args.contains(a.key)) continue;
    if (a.required)
      throw LayerSpecError(
          a.key, fmt::format("layer '{}': missing required key '{}' ({})", type, a.key, a.help));
    if (!a.default_value.is_null()) args[a.key] = a.default_value;  // null: derived by the layer
  }
  return args;
}

std::shared_ptr<Module> make_layer(const json& spec, Generator& generator) {
  // Not spec.value("type", ""): that throws nlohmann's type_error when "type" is not a string.
  if (spec.is_object() && spec.contains("type") && spec["type"] == "sequential") {
    if (!spec.contains("layers")) throw Error("layer 'sequential': missing \"layers\"");
    return make_sequential(spec["layers"], generator);
  }
  try {
    const json args = validate_layer_spec(spec);
    for (const LayerType& t : layer_types())
      if (t.name == args["type"]) return t.make(args, generator);
  } catch (const LayerSpecError& e) {
    throw Error(e.what());
  }
  throw Error("make_layer: unreachable");
}

std::shared_ptr<Sequential> make_sequential(const json& layer_specs, Generator& generator) {
  if (!layer_specs.is_array() || layer_specs.empty())
    throw Error("a model needs a non-empty list of layers");
  auto model = std::make_shared<Sequential>();
  for (std::size_t i = 0; i < layer_specs.size(); ++i) {
    try {
      model->append(make_layer(layer_specs[i], generator));
    } catch (const Error& e) {
      throw Error(fmt::format("layer {}: {}", i, e.what()));
    }
  }
  return model;
}

}  // namespace lathe
