// ONNX operators: index.
#include "src/onnx/import/kernels.h"

namespace lathe::onnx_detail {

void add_index_ops(OpTable& table) { (void)table; }

}  // namespace lathe::onnx_detail
