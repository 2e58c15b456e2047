#pragma once
// A model class of the program's own, as a user writes one: a classifier of points with a
// residual block, h = relu(W_in x), h = h + W_2 gelu(W_1 h), logits = W_out h. moon_net.cpp
// registers it as "moon_net", so its bundles load, predict, serve and train in shards like a
// built-in model's (docs/custom_modules.md).
#include <memory>

#include "lathe/nn.h"

class MoonNet : public lathe::Module {
 public:
  MoonNet(std::int64_t inputs, std::int64_t hidden, std::int64_t classes,
          lathe::Generator& generator);
  lathe::Tensor forward(const lathe::Tensor& points) override;
  // The registered name and the arguments that rebuild this module (make_layer(spec())).
  std::string type() const override { return "moon_net"; }
  nlohmann::json spec() const override;

 private:
  std::int64_t inputs_, hidden_, classes_;
  std::shared_ptr<lathe::Linear> in_, expand_, contract_, out_;
};
