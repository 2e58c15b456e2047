// MoonNet and its registration. Compiled into the program (examples/custom_module/main.cpp) and,
// on its own, into a plugin (libmoon_net_plugin.so) with which the `lathe` command reads its
// bundles: `lathe --plugin libmoon_net_plugin.so predict BUNDLE points.csv`.
#include "examples/custom_module/moon_net.h"

#include "lathe/ops.h"

using namespace lathe;

MoonNet::MoonNet(std::int64_t inputs, std::int64_t hidden, std::int64_t classes,
                 Generator& generator)
    : inputs_(inputs), hidden_(hidden), classes_(classes) {
  in_ = std::make_shared<Linear>(inputs, hidden, true, generator);
  expand_ = std::make_shared<Linear>(hidden, 2 * hidden, true, generator);
  contract_ = std::make_shared<Linear>(2 * hidden, hidden, true, generator);
  out_ = std::make_shared<Linear>(hidden, classes, true, generator);
  register_module("in", in_);
  register_module("expand", expand_);
  register_module("contract", contract_);
  register_module("out", out_);
}

Tensor MoonNet::forward(const Tensor& points) {
  const Tensor h = relu(in_->forward(points));
  return out_->forward(h + contract_->forward(gelu(expand_->forward(h))));
}

nlohmann::json MoonNet::spec() const {
  return {{"type", type()}, {"inputs", inputs_}, {"hidden", hidden_}, {"classes", classes_}};
}

namespace {

using Kind = LayerArgument::Kind;

// Runs when the program starts, or when the plugin is loaded.
const bool registered = [] {
  LayerType type{"moon_net",
                 "a residual classifier of points (examples/custom_module)",
                 {{"inputs", Kind::Integer, true, nullptr, "coordinates per point"},
                  {"hidden", Kind::Integer, false, 32, "width of the residual stream"},
                  {"classes", Kind::Integer, true, nullptr, "classes to score"}},
                 [](const nlohmann::json& args, Generator& generator) -> std::shared_ptr<Module> {
                   return std::make_shared<MoonNet>(args["inputs"].get<std::int64_t>(),
                                                    args["hidden"].get<std::int64_t>(),
                                                    args["classes"].get<std::int64_t>(), generator);
                 }};
  // Optional: lets configs and bundles be checked against the data's shape before anything runs.
  type.output_shape = [](const nlohmann::json& args, const Shape& input) {
    if (input != Shape{args["inputs"].get<std::int64_t>()})
      throw LayerSpecError("inputs", "moon_net: the input is " + shape_str(input) + ", not [" +
                                         args["inputs"].dump() + "]");
    return Shape{args["classes"].get<std::int64_t>()};
  };
  type.example = {{"type", "moon_net"}, {"inputs", 2}, {"classes", 2}};
  register_layer_type(std::move(type));
  return true;
}();

}  // namespace
