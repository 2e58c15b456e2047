// ONNX operators: nn.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_nn_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
