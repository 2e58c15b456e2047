#pragma once
// Internal: float32 products computed from bfloat16 inputs (src/tensor/gemm_bf16.cpp), for
// mixed-precision training ([trainer] precision = "bf16"). Both operands are rounded to bf16
// (8 bits of mantissa) as they are packed, and the CPU's bf16 dot-product instruction
// (AVX512_BF16's VDPBF16PS: two products per float32 lane) accumulates in float32; C, alpha and
// beta stay float32. Nothing else changes: weights, gradients and optimizer state are float32.
#include <cstdint>

namespace lathe::detail {

// Whether this build and CPU have the bf16 dot-product instruction.
bool bf16_products_supported();

// While a BFloat16Products lives (the trainer holds one for a bf16 run), every float32 product
// that goes through gemm() takes the bf16 path, on every thread. Constructing one where
// bf16_products_supported() is false is an error the caller must avoid.
class BFloat16Products {
 public:
  BFloat16Products();
  ~BFloat16Products();
  BFloat16Products(const BFloat16Products&) = delete;
  BFloat16Products& operator=(const BFloat16Products&) = delete;
};
bool bf16_products_enabled();

// C = alpha op(A) op(B) + beta C (row-major, as cblas_sgemm) from bf16-rounded A and B, on the
// calling thread. Returns false, doing nothing, where the build or CPU lacks the instruction.
bool gemm_bf16(bool transpose_a, bool transpose_b, std::int64_t m, std::int64_t n, std::int64_t k,
               float alpha, const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
               float beta, float* c, std::int64_t ldc);

// x rounded to the nearest bf16 (ties to even), as a float: what the products see.
float round_to_bf16(float x);

}  // namespace lathe::detail
