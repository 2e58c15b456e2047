#pragma once
// Internal: loops on raw tensor data for floors that may not call ops. They record nothing on
// the graph and do not broadcast; the differentiable versions are in ops.h.
#include "lathe/tensor.h"

namespace lathe::detail {

// a + b as a new tensor, for two floating tensors of one shape and dtype (else an internal
// error). The autograd engine sums the gradients that reach one tensor with it: autograd calls
// no ops. The loop and its parallel split are those of ops' add on equal shapes, so the sums are
// the same to the bit.
Tensor add_same_shape(const Tensor& a, const Tensor& b);

}  // namespace lathe::detail
