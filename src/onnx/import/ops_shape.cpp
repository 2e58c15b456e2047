// ONNX operators: shape.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_shape_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
