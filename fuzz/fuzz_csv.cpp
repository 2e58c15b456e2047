// libFuzzer target: the CSV readers on any bytes: parse_csv with target column "y", and
// parse_csv_columns (what `lathe predict` reads) with every column.
#include <cmath>

#include "fuzz/fuzz_support.h"
#include "lathe/data.h"
#include "lathe/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using lathe::fuzz::require;
  try {
    const lathe::CsvTable table =
        lathe::parse_csv(lathe::fuzz::bytes_of(data, size), "fuzz.csv", "y");
    const std::int64_t rows = table.targets.numel();
    require(rows > 0, "a table without rows");
    require(table.features.shape() ==
                lathe::Shape{rows, static_cast<std::int64_t>(table.feature_names.size())},
            "features shape is not [rows, feature names]");
    const float* values = table.features.data<float>();
    for (std::int64_t i = 0; i < table.features.numel(); ++i)
      require(std::isfinite(values[i]), "a non-finite feature");
    for (std::int64_t i = 0; i < rows; ++i)
      require(std::isfinite(table.targets.data<float>()[i]), "a non-finite target");
  } catch (const lathe::Error&) {
  }
  try {
    const lathe::CsvTable table =
        lathe::parse_csv_columns(lathe::fuzz::bytes_of(data, size), "fuzz.csv", {});
    require(table.features.dim() == 2 && table.features.shape()[0] > 0, "no rows");
    require(table.features.shape()[1] == static_cast<std::int64_t>(table.feature_names.size()),
            "features shape is not [rows, columns]");
    const float* values = table.features.data<float>();
    for (std::int64_t i = 0; i < table.features.numel(); ++i)
      require(std::isfinite(values[i]), "a non-finite value");
  } catch (const lathe::Error&) {
  }
  return 0;
}
