// ONNX operators: math.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_math_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
