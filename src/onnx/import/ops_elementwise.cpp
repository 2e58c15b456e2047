// ONNX operators: elementwise.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_elementwise_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
