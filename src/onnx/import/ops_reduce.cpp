// ONNX operators: reduce.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_reduce_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
