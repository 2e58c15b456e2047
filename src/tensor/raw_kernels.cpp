#include "src/tensor/raw_kernels.h"

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/parallel.h"
#include "src/tensor/dispatch.h"

namespace lathe::detail {

Tensor add_same_shape(const Tensor& a, const Tensor& b) {
  require_floating("add_same_shape", a);
  require_floating("add_same_shape", b);
  if (a.shape() != b.shape() || a.dtype() != b.dtype())
    throw Error(fmt::format("add_same_shape: {} {} and {} {} differ (internal error)",
                            dtype_name(a.dtype()), shape_str(a.shape()), dtype_name(b.dtype()),
                            shape_str(b.shape())));
  Tensor out = Tensor::empty(a.shape(), a.dtype());
  dispatch_floating(a.dtype(), "add_same_shape", [&](auto tag) {
    using T = decltype(tag);
    const T* x = a.data<T>();
    const T* y = b.data<T>();
    T* o = out.data<T>();
    parallel_for(a.numel(), kParallelGrain, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t i = begin; i < end; ++i) o[i] = x[i] + y[i];
    });
  });
  return out;
}

}  // namespace lathe::detail
