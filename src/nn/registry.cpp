// The layer registry: every module type a config or bundle can name, with its arguments, the
// tensors it holds and the shape it maps an example to; open to types a program registers.
#include <fmt/format.h>

#include <deque>
#include <mutex>
#include <set>

#include "lathe/error.h"
#include "lathe/gpt.h"
#include "lathe/nn.h"
#include "lathe/ops.h"
#include "src/nn/registry_detail.h"

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
    case Kind::Path:
      return "a file path";
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
    case Kind::Path:
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

// ---- Shapes from arguments: what bundles are checked against, and configs against data ----

std::int64_t positive(const json& args, const char* key) {
  const json& value = args[key];
  // JSON read from a file holds positive integers as unsigned, a module's spec() as signed.
  const bool ok = value.is_number_unsigned()
                      ? value.get<std::uint64_t>() > 0 &&
                            value.get<std::uint64_t>() <= static_cast<std::uint64_t>(INT64_MAX)
                      : value.is_number_integer() && value.get<std::int64_t>() > 0;
  if (!ok)
    throw LayerSpecError(key, fmt::format("{} '{}' is {}, not a positive integer",
                                          args["type"].get<std::string>(), key, value.dump()));
  return value.get<std::int64_t>();
}

std::int64_t non_negative(const json& args, const char* key) {
  const json& value = args[key];
  if (!value.is_number_integer() || value.get<std::int64_t>() < 0)
    throw LayerSpecError(key, fmt::format("{} '{}' is {}, not an integer >= 0",
                                          args["type"].get<std::string>(), key, value.dump()));
  return value.get<std::int64_t>();
}

[[noreturn]] void shape_mismatch(const json& args, const char* key, const std::string& why) {
  throw LayerSpecError(key, fmt::format("{}: {}", args["type"].get<std::string>(), why));
}

// Output length of a sliding window over `length` (the formula of conv2d and the poolings).
std::int64_t windows(const json& args, const char* axis, std::int64_t length, std::int64_t kernel,
                     std::int64_t stride, std::int64_t padding, std::int64_t dilation) {
  const std::int64_t span = dilation * (kernel - 1) + 1;
  if (length > (INT64_MAX / 4) || padding > (INT64_MAX / 4) || span > length + 2 * padding)
    shape_mismatch(args, "kernel_size",
                   fmt::format("a window of {} (kernel_size {}, dilation {}) does not fit the "
                               "{} {} with padding {}",
                               span, kernel, dilation, axis, length, padding));
  return (length + 2 * padding - span) / stride + 1;
}

// [C, H, W] with C == `channels` (0: any).
void require_image(const json& args, const Shape& input, std::int64_t channels, const char* key) {
  if (input.size() != 3)
    shape_mismatch(args, key,
                   fmt::format("input of shape {} per example is not [C, H, W]", shape_str(input)));
  if (channels > 0 && input[0] != channels)
    shape_mismatch(
        args, key,
        fmt::format("the input has {} channels but '{}' is {}", input[0], key, channels));
}

Shape pooled(const json& args, const Shape& input) {
  require_image(args, input, 0, "kernel_size");
  const std::int64_t k = positive(args, "kernel_size");
  const std::int64_t stride = args.contains("stride") ? positive(args, "stride") : k;
  const std::int64_t padding = non_negative(args, "padding");
  return {input[0], windows(args, "height", input[1], k, stride, padding, 1),
          windows(args, "width", input[2], k, stride, padding, 1)};
}

Shape same_shape(const json&, const Shape& input) {
  return input;
}

std::vector<LayerArgument> pool_arguments() {
  return {{"kernel_size", Kind::Integer, true, nullptr, "window height and width"},
          {"stride", Kind::Integer, false, nullptr, "step between windows (default: kernel_size)"},
          {"padding", Kind::Integer, false, 0, "added on every side, at most kernel_size / 2"}};
}

std::shared_ptr<Module> make_pool(Pool2d::Kind kind, const json& a) {
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

std::map<std::string, Shape> batch_norm_tensors(const json& a) {
  const std::int64_t features = positive(a, "features");
  std::map<std::string, Shape> tensors;
  for (const char* name : {"weight", "bias", "running_mean", "running_var"})
    tensors[name] = {features};
  return tensors;
}

std::function<Shape(const json&, const Shape&)> batch_norm_output(int spatial_dims) {
  return [spatial_dims](const json& a, const Shape& input) {
    const bool rank_ok =
        spatial_dims == 2 ? input.size() == 3 : input.size() == 1 || input.size() == 2;
    if (!rank_ok || input[0] != a["features"].get<std::int64_t>())
      shape_mismatch(
          a, "features",
          fmt::format("input of shape {} per example is not {} with 'features' = {}",
                      shape_str(input), spatial_dims == 2 ? "[C, H, W]" : "[C] or [C, L]",
                      a["features"].get<std::int64_t>()));
    return input;
  };
}

// A layer without arguments or tensors whose output has the input's shape.
LayerType shape_keeping(std::string name, std::string help,
                        std::function<Tensor(const Tensor&)> function) {
  LayerType type{std::move(name), std::move(help), {}, nullptr};
  type.make = [name = type.name, function](const json&, Generator&) {
    return activation(name, function);
  };
  type.output_shape = same_shape;
  return type;
}

LayerType gpt_type() {
  LayerType type{
      "gpt",
      "a GPT language model: int64 tokens [N, T] -> logits [N, T, vocab_size]",
      {{"n_layer", Kind::Integer, false, 4, "transformer blocks"},
       {"n_head", Kind::Integer, false, 4, "attention heads (n_embd must be a multiple)"},
       {"n_embd", Kind::Integer, false, 128, "width of the residual stream"},
       {"block_size", Kind::Integer, false, 64, "the longest context, in tokens"},
       {"vocab_size", Kind::Integer, false, nullptr,
        "tokens in the vocabulary (lathe train: the tokenizer's)"},
       {"dropout", Kind::Number, false, 0.0, "on the embeddings and each residual branch"},
       {"bias", Kind::Boolean, false, true, "biases in the linear layers and LayerNorms"},
       {"scaled_residual_init", Kind::Boolean, false, true,
        "initialize the residual projections with std 0.02 / sqrt(2 n_layer) (GPT-2); not saved"}},
      nullptr};
  type.check = [](const json& a) {
    const auto in_range = [&](const char* key, std::int64_t low, std::int64_t high) {
      if (!a.contains(key)) return;
      const std::int64_t value = a[key].get<std::int64_t>();
      if (value < low || value > high)
        throw LayerSpecError(
            key, fmt::format("gpt: {} must be in [{}, {}], got {}", key, low, high, value));
    };
    in_range("n_layer", 1, 1024);
    in_range("n_head", 1, 1 << 20);
    in_range("n_embd", 1, 1 << 20);
    in_range("block_size", 1, 1 << 20);
    in_range("vocab_size", 1, 1 << 24);
    if (a["n_embd"].get<std::int64_t>() % a["n_head"].get<std::int64_t>() != 0)
      throw LayerSpecError(
          "n_embd", fmt::format("gpt: n_embd {} must be a multiple of n_head {}",
                                a["n_embd"].get<std::int64_t>(), a["n_head"].get<std::int64_t>()));
    const double dropout = a["dropout"].get<double>();
    if (!(dropout >= 0 && dropout < 1))
      throw LayerSpecError("dropout",
                           fmt::format("gpt: dropout must be in [0, 1), got {}", dropout));
  };
  const auto config_of = [](const json& a) {
    if (!a.contains("vocab_size"))
      throw LayerSpecError("vocab_size",
                           "gpt: missing 'vocab_size' (lathe train takes it from "
                           "the tokenizer)");
    json saved = a;
    saved.erase("scaled_residual_init");
    try {
      GPTConfig config = GPTConfig::from_json(saved);
      config.scaled_residual_init = a.value("scaled_residual_init", true);
      return config;
    } catch (const Error& e) {
      throw LayerSpecError("type", e.what());
    }
  };
  type.make = [config_of](const json& a, Generator& g) -> std::shared_ptr<Module> {
    return std::make_shared<GPT>(config_of(a), g);
  };
  type.tensor_shapes = [config_of](const json& a) {
    const auto shapes = config_of(a).parameter_shapes();
    return std::map<std::string, Shape>(shapes.begin(), shapes.end());
  };
  type.output_shape = [config_of](const json& a, const Shape& input) {
    const GPTConfig config = config_of(a);
    if (input.size() != 1 || input[0] < 1 || input[0] > config.block_size)
      shape_mismatch(a, "block_size",
                     fmt::format("input of shape {} per example is not [T] tokens with T <= "
                                 "block_size {}",
                                 shape_str(input), config.block_size));
    return Shape{input[0], config.vocab_size};
  };
  type.input = LayerType::Input::Tokens;
  type.example = {{"type", "gpt"}, {"n_layer", 1},    {"n_head", 2},
                  {"n_embd", 8},   {"block_size", 4}, {"vocab_size", 5}};
  return type;
}

std::vector<LayerType> builtin_types() {
  std::vector<LayerType> types;
  {
    LayerType linear{"linear",
                     "fully connected: y = x W^T + b",
                     {{"in", Kind::Integer, true, nullptr, "input features"},
                      {"out", Kind::Integer, true, nullptr, "output features"},
                      {"bias", Kind::Boolean, false, true, "learn a bias"}},
                     [](const json& a, Generator& g) -> std::shared_ptr<Module> {
                       return std::make_shared<Linear>(a["in"].get<std::int64_t>(),
                                                       a["out"].get<std::int64_t>(),
                                                       a["bias"].get<bool>(), g);
                     }};
    linear.tensor_shapes = [](const json& a) {
      std::map<std::string, Shape> tensors{{"weight", {positive(a, "out"), positive(a, "in")}}};
      if (a["bias"].get<bool>()) tensors["bias"] = {tensors["weight"][0]};
      return tensors;
    };
    linear.output_shape = [](const json& a, const Shape& input) {
      const std::int64_t in = positive(a, "in");
      if (input.empty() || input.back() != in)
        shape_mismatch(
            a, "in",
            fmt::format("the input has {} features{} but 'in' is {}",
                        input.empty() ? 1 : input.back(),
                        input.size() > 1 ? fmt::format(" (shape {})", shape_str(input)) : "", in));
      Shape out = input;
      out.back() = positive(a, "out");
      return out;
    };
    linear.example = {{"type", "linear"}, {"in", 3}, {"out", 2}};
    types.push_back(std::move(linear));
  }
  {
    LayerType conv{
        "conv2d",
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
        }};
    conv.tensor_shapes = [](const json& a) {
      const std::int64_t in = positive(a, "in"), out = positive(a, "out");
      const std::int64_t k = positive(a, "kernel_size"), groups = positive(a, "groups");
      if (in % groups != 0)
        throw LayerSpecError("groups",
                             fmt::format("conv2d groups {} does not divide in {}", groups, in));
      std::map<std::string, Shape> tensors{{"weight", {out, in / groups, k, k}}};
      if (a["bias"].get<bool>()) tensors["bias"] = {out};
      return tensors;
    };
    conv.output_shape = [](const json& a, const Shape& input) {
      require_image(a, input, positive(a, "in"), "in");
      const std::int64_t k = positive(a, "kernel_size"), stride = positive(a, "stride");
      const std::int64_t padding = non_negative(a, "padding"), dilation = positive(a, "dilation");
      return Shape{positive(a, "out"), windows(a, "height", input[1], k, stride, padding, dilation),
                   windows(a, "width", input[2], k, stride, padding, dilation)};
    };
    conv.example = {{"type", "conv2d"}, {"in", 2}, {"out", 2}, {"kernel_size", 1}};
    types.push_back(std::move(conv));
  }
  LayerType max_pool{"max_pool2d", "the maximum of each window of [N, C, H, W]", pool_arguments(),
                     [](const json& a, Generator&) { return make_pool(Pool2d::Kind::Max, a); }};
  max_pool.output_shape = pooled;
  max_pool.example = {{"type", "max_pool2d"}, {"kernel_size", 2}};
  types.push_back(std::move(max_pool));
  LayerType avg_pool{"avg_pool2d",
                     "the mean of each window of [N, C, H, W] (padding counts as zeros)",
                     pool_arguments(),
                     [](const json& a, Generator&) { return make_pool(Pool2d::Kind::Average, a); }};
  avg_pool.output_shape = pooled;
  avg_pool.example = {{"type", "avg_pool2d"}, {"kernel_size", 2}};
  types.push_back(std::move(avg_pool));
  LayerType global_pool{"global_avg_pool",
                        "[N, C, H, W] -> [N, C], the mean of each channel",
                        {},
                        [](const json&, Generator&) -> std::shared_ptr<Module> {
                          return std::make_shared<GlobalAvgPool>();
                        }};
  global_pool.output_shape = [](const json& a, const Shape& input) {
    require_image(a, input, 0, "type");
    return Shape{input[0]};
  };
  types.push_back(std::move(global_pool));
  for (const int spatial : {1, 2}) {
    LayerType bn{spatial == 1 ? "batch_norm1d" : "batch_norm2d",
                 spatial == 1 ? "batch normalization of [N, C] or [N, C, L]"
                              : "batch normalization of [N, C, H, W]",
                 batch_norm_arguments(),
                 [spatial](const json& a, Generator&) { return batch_norm_layer(spatial, a); }};
    bn.tensor_shapes = batch_norm_tensors;
    bn.output_shape = batch_norm_output(spatial);
    bn.example = {{"type", bn.name}, {"features", 2}};
    types.push_back(std::move(bn));
  }
  LayerType reshape_type{
      "reshape",
      "[N, ...] -> [N, shape...]",
      {{"shape", Kind::IntegerList, true, nullptr, "the shape of one example, e.g. [1, 28, 28]"}},
      [](const json& a, Generator&) -> std::shared_ptr<Module> {
        return std::make_shared<Reshape>(a["shape"].get<Shape>());
      }};
  reshape_type.output_shape = [](const json& a, const Shape& input) {
    const Shape shape = a["shape"].get<Shape>();
    std::int64_t count = 1;
    for (const std::int64_t d : shape) {
      if (d < 1 || d > INT64_MAX / std::max<std::int64_t>(count, 1))
        shape_mismatch(a, "shape", fmt::format("shape {} is not a shape", shape_str(shape)));
      count *= d;
    }
    if (count != shape_numel(input))
      shape_mismatch(a, "shape",
                     fmt::format("an example of shape {} ({} values) does not fit shape {} ({})",
                                 shape_str(input), shape_numel(input), shape_str(shape), count));
    return shape;
  };
  reshape_type.example = {{"type", "reshape"}, {"shape", {2}}};
  types.push_back(std::move(reshape_type));
  LayerType flatten{"flatten",
                    "[N, ...] -> [N, features]",
                    {},
                    [](const json&, Generator&) -> std::shared_ptr<Module> {
                      return std::make_shared<Flatten>();
                    }};
  flatten.output_shape = [](const json&, const Shape& input) { return Shape{shape_numel(input)}; };
  types.push_back(std::move(flatten));
  LayerType dropout{"dropout",
                    "zero elements with probability p while training",
                    {{"p", Kind::Number, false, 0.5, "drop probability"}},
                    [](const json& a, Generator&) -> std::shared_ptr<Module> {
                      return std::make_shared<Dropout>(a["p"].get<double>());
                    }};
  dropout.output_shape = same_shape;
  types.push_back(std::move(dropout));
  types.push_back(shape_keeping("relu", "max(x, 0)", [](const Tensor& x) { return relu(x); }));
  LayerType leaky{"leaky_relu",
                  "x if x > 0 else slope * x",
                  {{"negative_slope", Kind::Number, false, 0.01, "slope for x < 0"}},
                  [](const json& a, Generator&) {
                    const double slope = a["negative_slope"].get<double>();
                    return activation("leaky_relu",
                                      [slope](const Tensor& x) { return leaky_relu(x, slope); },
                                      {{"negative_slope", slope}});
                  }};
  leaky.output_shape = same_shape;
  types.push_back(std::move(leaky));
  types.push_back(
      shape_keeping("sigmoid", "1 / (1 + exp(-x))", [](const Tensor& x) { return sigmoid(x); }));
  types.push_back(
      shape_keeping("tanh", "hyperbolic tangent", [](const Tensor& x) { return tanh(x); }));
  LayerType gelu_type{
      "gelu",
      "x * Phi(x); approximate = \"tanh\" for the tanh form",
      {{"approximate", Kind::String, false, "none", "\"none\" or \"tanh\""}},
      [](const json& a, Generator&) {
        const std::string approximate = a["approximate"].get<std::string>();
        if (approximate != "none" && approximate != "tanh")
          throw LayerSpecError("approximate", fmt::format("layer 'gelu': approximate must be "
                                                          "\"none\" or \"tanh\", got \"{}\"",
                                                          approximate));
        const auto mode = approximate == "tanh" ? GeluApproximation::Tanh : GeluApproximation::None;
        return activation("gelu", [mode](const Tensor& x) { return gelu(x, mode); },
                          {{"approximate", approximate}});
      }};
  gelu_type.output_shape = same_shape;
  types.push_back(std::move(gelu_type));
  types.push_back(gpt_type());
  return types;
}

// Types never move once registered (a deque keeps references valid as it grows), so a pointer
// from find_layer_type stays good without the lock.
struct Registry {
  std::mutex mutex;
  std::deque<LayerType> types;
  Registry() {
    for (LayerType& type : builtin_types()) types.push_back(std::move(type));
  }
};

Registry& registry() {
  static Registry instance;
  return instance;
}

std::string known_types() {
  std::vector<std::string> names;
  for (const LayerType& t : layer_types()) names.push_back(t.name);
  return fmt::format("{}", fmt::join(names, ", "));
}

}  // namespace

namespace {

void add_layer_type(LayerType type) {
  if (type.name.empty() || type.name == "sequential")
    throw Error(
        fmt::format("register_layer_type: the name \"{}\" is reserved or empty", type.name));
  if (!type.make)
    throw Error(fmt::format("register_layer_type: type '{}' has no make function", type.name));
  std::set<std::string> keys;
  for (const LayerArgument& argument : type.arguments)
    if (argument.key == "type" || !keys.insert(argument.key).second)
      throw Error(
          fmt::format("register_layer_type: type '{}' names argument '{}' twice (or "
                      "names one 'type')",
                      type.name, argument.key));
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (const LayerType& existing : r.types)
    if (existing.name == type.name)
      throw Error(
          fmt::format("register_layer_type: a type named '{}' is already registered", type.name));
  r.types.push_back(std::move(type));
}

}  // namespace

namespace detail {

thread_local std::vector<std::string>* plugin_registration_problems = nullptr;

void remove_layer_type(const std::string& name) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  // Only the last: erasing inside the deque would move the types find_layer_type pointed to.
  if (r.types.empty() || r.types.back().name != name)
    throw Error(fmt::format("remove_layer_type: '{}' is not the type registered last", name));
  r.types.pop_back();
}

}  // namespace detail

void register_layer_type(LayerType type) {
  try {
    add_layer_type(std::move(type));
  } catch (const Error& e) {
    // An exception cannot leave a shared library's static initializers (the process would
    // abort): load_plugin collects it instead and reports it with the plugin's name.
    if (!detail::plugin_registration_problems) throw;
    detail::plugin_registration_problems->push_back(e.what());
  }
}

const LayerType* find_layer_type(const std::string& name) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  for (const LayerType& type : r.types)
    if (type.name == name) return &type;
  return nullptr;
}

bool is_long_text_argument(const json& value) {
  if (!value.is_string()) return false;
  const std::string& text = value.get_ref<const std::string&>();
  return text.size() > 80 || text.find('\n') != std::string::npos;
}

std::string layer_argument_text(const json& value) {
  if (!is_long_text_argument(value)) return value.dump();
  return fmt::format("<{} characters>", value.get_ref<const std::string&>().size());
}

std::vector<LayerType> layer_types() {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return {r.types.begin(), r.types.end()};
}

json validate_layer_spec(const json& spec) {
  if (!spec.is_object()) throw LayerSpecError("", "a layer must be a table with a \"type\" key");
  if (!spec.contains("type") || !spec["type"].is_string())
    throw LayerSpecError("type",
                         fmt::format("a layer needs a \"type\" (one of: {})", known_types()));
  const std::string type = spec["type"].get<std::string>();
  const LayerType* found = find_layer_type(type);
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
  if (found->check) found->check(args);
  return args;
}

namespace {

// A registered type's module; a program's make function may return none.
std::shared_ptr<Module> made(const LayerType& type, const json& args, Generator& generator) {
  std::shared_ptr<Module> module = type.make(args, generator);
  if (!module)
    throw Error(fmt::format("layer type '{}': its make function returned no module", type.name));
  return module;
}

}  // namespace

std::shared_ptr<Module> make_layer(const json& spec, Generator& generator) {
  // Not spec.value("type", ""): that throws nlohmann's type_error when "type" is not a string.
  if (spec.is_object() && spec.contains("type") && spec["type"] == "sequential") {
    if (!spec.contains("layers")) throw Error("layer 'sequential': missing \"layers\"");
    return make_sequential(spec["layers"], generator);
  }
  try {
    const json args = validate_layer_spec(spec);
    return made(*find_layer_type(args["type"].get<std::string>()), args, generator);
  } catch (const LayerSpecError& e) {
    throw Error(e.what());
  }
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

namespace {

// Sequential models inside sequential models, as deep as a spec may nest.
constexpr int kMaxModelDepth = 16;

bool is_sequential(const json& spec) {
  return spec.is_object() && spec.contains("type") && spec["type"] == "sequential";
}

const json& sequential_layers(const json& spec) {
  const auto layers = spec.find("layers");
  if (layers == spec.end() || !layers->is_array() || layers->empty())
    throw Error("a sequential model needs a non-empty list \"layers\"");
  return *layers;
}

// Runs `visit(args, type, prefix)` on every leaf layer of `spec` in order, with the dotted name
// prefix of its tensors ("" or "1.0."); errors are "layer 1.0: ...".
template <class Visit>
void walk_leaves(const json& spec, const std::string& prefix, int depth, const Visit& visit) {
  const auto fail = [&](const std::string& why) {
    return prefix.empty()
               ? Error(why)
               : Error(fmt::format("layer {}: {}", prefix.substr(0, prefix.size() - 1), why));
  };
  if (depth > kMaxModelDepth)
    throw fail(fmt::format("sequential layers nest deeper than {}", kMaxModelDepth));
  if (is_sequential(spec)) {
    const json* layers = nullptr;
    try {
      layers = &sequential_layers(spec);
    } catch (const Error& e) {
      throw fail(e.what());
    }
    for (std::size_t i = 0; i < layers->size(); ++i)
      walk_leaves((*layers)[i], prefix + std::to_string(i) + ".", depth + 1, visit);
    return;
  }
  try {
    const json args = validate_layer_spec(spec);
    visit(args, *find_layer_type(args["type"].get<std::string>()), prefix);
  } catch (const LayerSpecError& e) {
    throw fail(e.what());
  } catch (const Error& e) {
    throw fail(e.what());
  }
}

}  // namespace

std::map<std::string, Shape> spec_tensor_shapes(const json& spec) {
  std::map<std::string, Shape> tensors;
  walk_leaves(spec, "", 0, [&](const json& args, const LayerType& type, const std::string& prefix) {
    std::map<std::string, Shape> own;
    if (type.tensor_shapes) {
      own = type.tensor_shapes(args);
    } else {
      Generator unused(0);
      for (const auto& [name, tensor] : made(type, args, unused)->state_dict())
        own[name] = tensor.shape();
    }
    for (auto& [name, shape] : own) tensors[prefix + name] = std::move(shape);
  });
  return tensors;
}

ShapeTrace trace_shapes(const json& spec, const Shape& input) {
  ShapeTrace trace;
  Shape current = input;
  walk_leaves(spec, "", 0, [&](const json& args, const LayerType& type, const std::string&) {
    if (!trace.complete) return;
    if (!type.output_shape) {
      trace.complete = false;
      return;
    }
    current = type.output_shape(args, current);
    trace.outputs.push_back(current);
  });
  return trace;
}

std::optional<std::string> why_not_rebuildable(const Module& module) {
  const std::string fix =
      "a bundle holds a module's spec() and rebuilds it through the layer registry: register "
      "the type with lathe::register_layer_type (docs/custom_modules.md) and give spec() its "
      "arguments";
  json spec;
  try {
    spec = module.spec();
  } catch (const std::exception& e) {
    return fmt::format("module type '{}': spec() fails: {}; {}", module.type(), e.what(), fix);
  }
  std::map<std::string, Shape> expected;
  try {
    expected = spec_tensor_shapes(spec);
  } catch (const Error& e) {
    return fmt::format("module type '{}' cannot be rebuilt from its spec(): {}; {}", module.type(),
                       e.what(), fix);
  }
  const std::map<std::string, Tensor> actual = module.state_dict();
  for (const auto& [name, tensor] : actual) {
    const auto found = expected.find(name);
    if (found == expected.end() || found->second != tensor.shape())
      return fmt::format(
          "module type '{}': its tensor '{}' {} is {} in a module rebuilt from its spec(); {}",
          module.type(), name, shape_str(tensor.shape()),
          found == expected.end() ? "missing" : "of shape " + shape_str(found->second), fix);
  }
  for (const auto& [name, shape] : expected)
    if (!actual.count(name))
      return fmt::format(
          "module type '{}': a module rebuilt from its spec() has tensor '{}' {} "
          "that this one lacks; {}",
          module.type(), name, shape_str(shape), fix);
  return std::nullopt;
}

}  // namespace lathe
