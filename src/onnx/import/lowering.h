#pragma once
// Internal: an imported graph as lathe's own layers, where it is a chain they express
// (src/onnx/import/lowering.cpp).
#include <optional>
#include <string>

#include "lathe/data.h"
#include "lathe/tensor.h"

namespace onnx {
class ModelProto;
}

namespace lathe::onnx_detail {

struct LoweredModel {
  nlohmann::json spec;                  // a sequential of lathe layer types
  std::map<std::string, Tensor> state;  // its state_dict
  Preprocessing preprocessing;          // the graph's leading scale and shift, if it has them
};

// The chain of nodes from graph value `input` to `output` as layers; nullopt, with `why` saying
// which node stopped it, when some node has no layer form. `may_take_preprocessing`: a leading
// Mul / Sub / Div by scalars becomes the preprocessing (only when the caller has none of its own).
// `flat_input`: one example is a vector (batch norm there is batch_norm1d, else batch_norm2d).
std::optional<LoweredModel> lower_to_layers(const onnx::ModelProto& model, const std::string& input,
                                            const std::string& output, bool may_take_preprocessing,
                                            bool flat_input, std::string& why);

}  // namespace lathe::onnx_detail
