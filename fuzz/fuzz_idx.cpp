// libFuzzer target: the IDX reader (raw and gzip, images and labels) on any bytes.
#include "fuzz/fuzz_support.h"
#include "lathe/data.h"
#include "lathe/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes = lathe::fuzz::bytes_of(data, size);
  try {
    const lathe::Tensor t = lathe::parse_idx(bytes, "fuzz-idx");
    // Gzip input may expand, raw input may not: an element is at least one byte of the file.
    if (size < 2 || data[0] != 0x1f || data[1] != 0x8b)
      lathe::fuzz::require(t.numel() <= static_cast<std::int64_t>(size),
                           "more elements than bytes");
  } catch (const lathe::Error&) {
  }
  try {
    const lathe::Tensor labels = lathe::parse_idx_labels(bytes, "fuzz-idx");
    lathe::fuzz::require(labels.dtype() == lathe::DType::Int64, "labels are not int64");
  } catch (const lathe::Error&) {
  }
  return 0;
}
