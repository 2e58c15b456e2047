#pragma once
// Modules: layers that own named parameters and buffers, compose into Sequential, switch between
// train() and eval(), and save/load a state_dict whose names are stable ("0.weight", "2.bias").
// A registry builds layers from specs ({"type": "linear", "in": 784, "out": 128}) so configs
// and saved bundles can name them; an unknown name is an error listing the known ones.
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/ops.h"
#include "lathe/random.h"
#include "lathe/tensor.h"

namespace lathe {

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& input) = 0;
  Tensor operator()(const Tensor& input) { return forward(input); }

  // The registry name ("linear") and the arguments that rebuild this module with make_layer.
  virtual std::string type() const = 0;
  virtual nlohmann::json spec() const;

  std::vector<NamedTensor> named_parameters() const;  // recursive, "child.name"
  std::vector<NamedTensor> named_buffers() const;
  std::vector<Tensor> parameters() const;
  std::int64_t parameter_count() const;
  // Parameters and buffers in their saved form: the live tensors, except where a module stores
  // one in another layout (Linear's [in, out] weights appear as copies in PyTorch's [out, in]).
  // To change the live tensors, use named_parameters() and named_buffers().
  std::map<std::string, Tensor> state_dict() const;
  // Copies values into this module's tensors. Every name must be present with the same shape
  // and no unknown name may appear; errors name the offending entry.
  void load_state_dict(const std::map<std::string, Tensor>& state);

  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  void zero_grad();

 protected:
  Tensor register_parameter(const std::string& name, Tensor value);
  Tensor register_buffer(const std::string& name, Tensor value);
  // How this module's own parameter or buffer `name` appears in state_dict(), and how a
  // state_dict entry of that form is copied back into it: a module that stores a tensor in
  // another layout than the saved one (Linear's [in, out] weights) overrides both.
  virtual Tensor saved_form(const std::string& name, const Tensor& stored) const;
  virtual void load_saved_form(const std::string& name, const Tensor& saved, Tensor& stored) const;
  void register_module(const std::string& name, std::shared_ptr<Module> module);
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }

 private:
  void collect(const std::string& prefix, bool buffers, std::vector<NamedTensor>& out) const;
  void collect_state(const std::string& prefix, std::map<std::string, Tensor>& out) const;
  void load_state(const std::string& prefix, const std::map<std::string, Tensor>& state) const;

  std::vector<NamedTensor> parameters_, buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

// Eval mode for a scope, training mode again after it (also when it throws) if that is what the
// model was in. A model already in eval mode is not written to, so concurrent scopes over one
// served model only read it.
class EvalModeGuard {
 public:
  explicit EvalModeGuard(Module& model) : model_(model), was_training_(model.is_training()) {
    if (was_training_) model_.eval();
  }
  ~EvalModeGuard() {
    if (was_training_) model_.train();
  }
  EvalModeGuard(const EvalModeGuard&) = delete;
  EvalModeGuard& operator=(const EvalModeGuard&) = delete;

 private:
  Module& model_;
  bool was_training_;
};

// y = x W^T + b with W [out, in] as PyTorch stores it, or y = x W + b with W stored [in, out]:
// the layout a layer that narrows by half or more (in >= 2 out, an image classifier's first
// layer) gets unless told otherwise. There each core of a split product multiplies its own
// contiguous block of W's rows, the block it updated in the optimizer's split of W (the seed
// MLP's epoch 6% faster, docs/PERFORMANCE.md item 20). PyTorch's initialization either way;
// state_dict() and saved bundles hold [out, in]. weight() is the tensor as stored (layout() says
// which): code that reads fan-in from its shape, such as kaiming_uniform_, needs OutIn.
class Linear : public Module {
 public:
  Linear(std::int64_t in_features, std::int64_t out_features, bool bias, Generator& generator,
         DType dtype = DType::Float32, std::optional<WeightLayout> layout = std::nullopt);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "linear"; }
  nlohmann::json spec() const override;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  WeightLayout layout() const { return layout_; }

 protected:
  Tensor saved_form(const std::string& name, const Tensor& stored) const override;
  void load_saved_form(const std::string& name, const Tensor& saved, Tensor& stored) const override;

 private:
  std::int64_t in_features_, out_features_;
  WeightLayout layout_;
  Tensor weight_, bias_;
};

// Layer normalization over the last axis ([..., features]), weight 1 and bias 0 to start; the
// bias is optional.
class LayerNorm : public Module {
 public:
  LayerNorm(std::int64_t features, double eps = 1e-5, bool bias = true,
            DType dtype = DType::Float32);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "layer_norm"; }
  nlohmann::json spec() const override;

 private:
  std::int64_t features_;
  double eps_;
  Tensor weight_, bias_;
};

// A lookup table: int64 indices of any shape -> their rows of weight [num_embeddings, dim],
// shape [..., dim]. Initialized N(0, 1) as PyTorch's nn.Embedding.
class Embedding : public Module {
 public:
  Embedding(std::int64_t num_embeddings, std::int64_t dim, Generator& generator,
            DType dtype = DType::Float32);
  Tensor forward(const Tensor& indices) override;
  std::string type() const override { return "embedding"; }
  nlohmann::json spec() const override;
  const Tensor& weight() const { return weight_; }

 private:
  std::int64_t num_embeddings_, dim_;
  Tensor weight_;
};

// [N, d1, d2, ...] -> [N, d1 * d2 * ...].
class Flatten : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "flatten"; }
};

// Zeroes each element with probability p in training (scaling the rest by 1/(1-p)); identity in
// eval. Draws from default_generator(), whose state checkpoints save.
class Dropout : public Module {
 public:
  explicit Dropout(double p);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "dropout"; }
  nlohmann::json spec() const override;

 private:
  double p_;
};

// [N, C, H, W] -> [N, O, OH, OW]. Square kernel, stride, padding and dilation; PyTorch's
// default initialization (U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = C / groups * k * k).
class Conv2d : public Module {
 public:
  struct Options {
    std::int64_t kernel_size = 3, stride = 1, padding = 0, dilation = 1, groups = 1;
    bool bias = true;
  };
  Conv2d(std::int64_t in_channels, std::int64_t out_channels, Options options,
         Generator& generator);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "conv2d"; }
  nlohmann::json spec() const override;

 private:
  std::int64_t in_channels_, out_channels_;
  Options options_;
  Tensor weight_, bias_;
};

// max_pool2d / avg_pool2d with a square window; the stride defaults to the kernel size.
class Pool2d : public Module {
 public:
  enum class Kind { Max, Average };
  Pool2d(Kind kind, std::int64_t kernel_size, std::int64_t stride, std::int64_t padding);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return kind_ == Kind::Max ? "max_pool2d" : "avg_pool2d"; }
  // A max pool with a 2x2 window, stride 2 and no padding (what Sequential fuses into batch norm).
  bool max_2x2() const {
    return kind_ == Kind::Max && kernel_size_ == 2 && stride_ == 2 && padding_ == 0;
  }
  nlohmann::json spec() const override;

 private:
  Kind kind_;
  std::int64_t kernel_size_, stride_, padding_;
};

// [N, C, H, W] -> [N, C]: the mean of each channel.
class GlobalAvgPool : public Module {
 public:
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "global_avg_pool"; }
};

// batch_norm1d ([N, C] or [N, C, L]) and batch_norm2d ([N, C, H, W]): learnable weight and bias,
// running_mean / running_var buffers (saved with the model), batch statistics in train(),
// running statistics in eval().
class BatchNorm : public Module {
 public:
  BatchNorm(int spatial_dims, std::int64_t features, double eps, double momentum);
  Tensor forward(const Tensor& input) override;
  // relu(forward(input)) in one op (batch_norm_relu); Sequential calls it for a batch norm
  // followed by a relu layer.
  Tensor forward_then_relu(const Tensor& input);
  // max_pool2d(relu(forward(input))), 2x2 window, stride 2, in one op
  // (batch_norm_relu_max_pool2d); Sequential calls it for batch_norm2d, relu, max_pool2d layers.
  Tensor forward_relu_max_pool(const Tensor& input);
  std::string type() const override { return spatial_dims_ == 2 ? "batch_norm2d" : "batch_norm1d"; }
  nlohmann::json spec() const override;

 private:
  void check_input(const Tensor& input) const;
  int spatial_dims_;
  std::int64_t features_;
  double eps_, momentum_;
  Tensor weight_, bias_, running_mean_, running_var_;
};

// [N, ...] -> [N, shape...] with the same number of values per example (e.g. [N, 28, 28] ->
// [N, 1, 28, 28] in front of a convolution).
class Reshape : public Module {
 public:
  explicit Reshape(Shape shape);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "reshape"; }
  nlohmann::json spec() const override;

 private:
  Shape shape_;
};

// An element-wise activation as a module: relu, sigmoid, tanh, leaky_relu, gelu.
class Activation : public Module {
 public:
  Activation(std::string type, std::function<Tensor(const Tensor&)> function,
             nlohmann::json spec = nlohmann::json::object());
  Tensor forward(const Tensor& input) override { return function_(input); }
  std::string type() const override { return type_; }
  nlohmann::json spec() const override;

 private:
  std::string type_;
  std::function<Tensor(const Tensor&)> function_;
  nlohmann::json spec_;
};

// Runs its children in order; they are named "0", "1", ... A batch norm followed by a relu runs
// as one op (BatchNorm::forward_then_relu): the same values and gradients, one pass fewer.
class Sequential : public Module {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::shared_ptr<Module>> layers);
  void append(std::shared_ptr<Module> layer);
  Tensor forward(const Tensor& input) override;
  std::string type() const override { return "sequential"; }
  nlohmann::json spec() const override;  // {"type": "sequential", "layers": [...]}
  std::size_t size() const { return children().size(); }
  const std::shared_ptr<Module>& layer(std::size_t index) const {
    return children().at(index).second;
  }
};

// ---- Layer registry (src/nn/registry.cpp) ----
//
// Every module a config, a bundle or a replica can name: lathe's layers, the GPT, and any type a
// program registers with register_layer_type. A module whose type() is registered and whose
// spec() holds that type's arguments can be saved in a bundle and loaded back, predicted,
// served, inspected and trained in shards (docs/custom_modules.md).

struct LayerArgument {
  // Path: a string naming a file; a config resolves a relative one against the config's folder.
  enum class Kind { Integer, Number, Boolean, String, IntegerList, Path };
  std::string key;
  Kind kind;
  bool required;
  nlohmann::json default_value;  // used when not required and absent; null: derived by the layer
  std::string help;
};

struct LayerType {
  std::string name;  // what type() returns
  std::string help;
  std::vector<LayerArgument> arguments;
  // Builds the module from checked arguments (defaults filled in).
  std::function<std::shared_ptr<Module>(const nlohmann::json& args, Generator& generator)> make;
  // Optional: checks between arguments beyond their kinds (n_embd a multiple of n_head, say),
  // run by validate_layer_spec; throws LayerSpecError naming the key. Arguments the data decides
  // may be absent here.
  std::function<void(const nlohmann::json& args)> check;
  // Optional: the name and shape of every tensor the module's state_dict() holds, from the
  // arguments alone. The bundle reader checks a file's tensors against it before building, so a
  // hostile architecture cannot allocate more than the file holds. Without it, a bundle's module
  // is built first and compared after (the sizes in its arguments are trusted).
  std::function<std::map<std::string, Shape>(const nlohmann::json& args)> tensor_shapes;
  // Optional: the shape of one example's output from one example's input shape (for [N, 784]
  // inputs, {784}). Errors are LayerSpecError naming the argument that does not fit. Used to
  // check a model against its data before training, and a bundle's activations before loading.
  std::function<Shape(const nlohmann::json& args, const Shape& input)> output_shape;
  // What forward() takes: float features [N, ...] or int64 token ids [N, T] (a language model).
  enum class Input { Features, Tokens } input = Input::Features;
  // A small spec that builds (for tests and the reference docs); {"type": name} when empty.
  nlohmann::json example;
};

// Adds a type. Throws lathe::Error when the name is taken (or empty), `make` is missing, or an
// argument is named twice. Registration is thread-safe; types are never removed.
void register_layer_type(LayerType type);
// Loads a shared library whose static initializers call register_layer_type (a plugin), so
// that bundles of its types load in this process: what `lathe --plugin LIBRARY` does. The
// library is built against lathe's headers without linking liblathe: its lathe symbols resolve
// to the loading program's. Errors name the file and what the loader said.
void load_plugin(const std::string& path);
// The registered type of that name, or null.
const LayerType* find_layer_type(const std::string& name);
// Every registered type, lathe's own first, in registration order.
std::vector<LayerType> layer_types();
// How a layer argument reads in one line (a training log, lathe inspect): its JSON, except that
// a long or multi-line string (an imported ONNX graph) is summarized as "<N characters>".
std::string layer_argument_text(const nlohmann::json& value);
bool is_long_text_argument(const nlohmann::json& value);

// A spec problem, with the key it concerns ("type" for the type itself), so a config reader can
// point at the line of that key.
class LayerSpecError : public std::runtime_error {
 public:
  LayerSpecError(std::string key, const std::string& message)
      : std::runtime_error(message), key(std::move(key)) {}
  std::string key;
};

// Checks a spec against the registry and returns it with defaults filled in. Throws
// LayerSpecError for an unknown type (listing the known ones), an unknown key (listing the
// allowed ones), a missing required key, or a value of the wrong kind.
nlohmann::json validate_layer_spec(const nlohmann::json& spec);

// Builds a layer (or a whole "sequential" spec) from a spec; errors are lathe::Error.
std::shared_ptr<Module> make_layer(const nlohmann::json& spec, Generator& generator);
std::shared_ptr<Sequential> make_sequential(const nlohmann::json& layer_specs,
                                            Generator& generator);

// The name and shape of every tensor a module built from `spec` holds (a "sequential" spec's
// layers prefixed "0.", "1.", ...), from the types' tensor_shapes where they have one. Errors name
// the layer ("layer 1.0: linear 'out' is -2, not a positive integer").
std::map<std::string, Shape> spec_tensor_shapes(const nlohmann::json& spec);

// The shape one example takes after each layer of `spec` (leaf layers in order), from `input`,
// the shape of one example. Stops (complete = false) at a type without output_shape. Errors name
// the layer and the sizes that disagree ("layer 2: linear: the input has 100 features but 'in'
// is 784").
struct ShapeTrace {
  std::vector<Shape> outputs;
  bool complete = true;
};
ShapeTrace trace_shapes(const nlohmann::json& spec, const Shape& input);

// Why `module` could not be rebuilt from its spec() through the registry (the message names the
// module and the call that fixes it), or nullopt when make_layer(module.spec()) gives a module
// with the same tensors. What save_bundle and sharded training check.
std::optional<std::string> why_not_rebuildable(const Module& module);

}  // namespace lathe
