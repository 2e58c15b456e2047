// libFuzzer target: the CSV readers on any bytes: parse_csv with target column "y", and
// parse_csv_columns (what `lathe predict` reads) with every column; then the text-cell reader
// in the dialect the first byte picks (comma, semicolon or tab), and a TableEncoding fitted on
// its rows (target "y" if there is one) with the options the second byte picks, whose features
// must be finite and whose JSON must rebuild the same encoding.
#include <cmath>

#include "fuzz/fuzz_support.h"
#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/table.h"

namespace {

void fuzz_table(std::string_view bytes) {
  using lathe::fuzz::require;
  if (bytes.size() < 2) return;
  const auto pick = static_cast<unsigned char>(bytes[0]);
  const auto options_byte = static_cast<unsigned char>(bytes[1]);
  const lathe::CsvDialect dialect{pick % 3 == 0 ? ',' : pick % 3 == 1 ? ';' : '\t'};
  lathe::RawTable table;
  try {
    table = lathe::parse_csv_table(bytes.substr(2), "fuzz.csv", dialect);
  } catch (const lathe::Error&) {
    return;
  }
  require(table.rows > 0, "a table without rows");
  for (const lathe::RawColumn& column : table.columns)
    require(static_cast<std::int64_t>(column.text.size()) == table.rows, "a column's cell count");
  lathe::TableOptions options;
  options.target = table.find("y") ? "y" : table.columns.front().name;
  options.classification = (options_byte & 1) == 0;
  options.impute = (options_byte & 2) ? "median" : "none";
  options.impute_categorical = (options_byte & 4) ? "most_frequent" : "none";
  options.missing_indicator = (options_byte & 8) != 0;
  options.unknown_category = (options_byte & 16) ? "error" : "ignore";
  std::vector<std::int64_t> training;
  for (std::int64_t r = 0; r < table.rows; r += 1 + (options_byte >> 5)) training.push_back(r);
  try {
    const lathe::TableEncoding encoding =
        lathe::TableEncoding::fit(table, training, options, dialect);
    const lathe::TableEncoding rebuilt = lathe::TableEncoding::from_json(encoding.to_json());
    require(rebuilt.to_json() == encoding.to_json(), "the encoding's JSON does not round-trip");
    const lathe::Tensor features = encoding.transform(table, &training);
    require(features.dim() == 2 && features.size(1) == encoding.width(), "features' width");
    const float* values = features.data<float>();
    for (std::int64_t i = 0; i < features.numel(); ++i)
      require(std::isfinite(values[i]), "a non-finite encoded feature");
    encoding.transform_target(table, &training);
  } catch (const lathe::Error&) {
  }
}

}  // namespace

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
  fuzz_table(lathe::fuzz::bytes_of(data, size));
  return 0;
}
