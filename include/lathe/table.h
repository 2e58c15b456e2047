#pragma once
// Tables as people keep them: CSV files whose cells are text (numbers, categories, missing
// values), read as they are, and a TableEncoding fitted on the training rows that turns such rows
// into the float features a model takes and the label column into class indices. The encoding is
// JSON and travels in the bundle, so `lathe predict`, `lathe eval` and `lathe serve` encode raw
// rows exactly as training did. Nothing here knows about models.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/tensor.h"

namespace lathe {

// ---- Reading (src/data/csv.cpp) ----

// The CSV dialects real files use. Always accepted: quoted cells ("" is a quote inside quotes)
// holding delimiters, quotes and line breaks; LF or CRLF line ends; a UTF-8 byte order mark;
// blank lines at the end; spaces around a cell outside its quotes.
struct CsvDialect {
  char delimiter = ',';  // ',', ';' or '\t'
  // "," ";" "\t" (or "tab") to a delimiter; anything else is an error listing those.
  static char delimiter_from_name(const std::string& name);
  static std::string delimiter_name(char delimiter);  // "," ";" "\t"
};

// The longest cell a CSV reader accepts (1 MiB): a longer one is an error at its position.
inline constexpr std::size_t kMaxCsvCellBytes = std::size_t{1} << 20;

// Cells of one column as text, stored back to back.
class TextCells {
 public:
  void push_back(std::string_view cell);
  std::string_view operator[](std::size_t i) const {
    const std::size_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(text_).substr(begin, ends_[i] - begin);
  }
  std::size_t size() const { return ends_.size(); }
  void reserve(std::size_t cells) { ends_.reserve(cells); }

 private:
  std::string text_;
  std::vector<std::size_t> ends_;
};

// One column of a raw table: text cells (CSV, JSON, serve's BYTES inputs) or numbers (serve's
// numeric inputs; NaN is a missing value).
struct RawColumn {
  std::string name;
  bool numeric = false;
  TextCells text;                  // when !numeric
  std::vector<float> numbers;      // when numeric
  std::vector<std::uint8_t> null;  // text: 1 where the value was absent (JSON null); may be empty
  bool is_null(std::int64_t row) const {
    return !null.empty() && null[static_cast<std::size_t>(row)] != 0;
  }
};

// Rows of named columns as read, before any encoding, and where each cell came from.
struct RawTable {
  std::string source;  // the file (or "request"), for messages about the whole table
  std::vector<RawColumn> columns;
  std::int64_t rows = 0;
  std::vector<std::size_t> lines;  // CSV: the line each row starts on (the header is line 1)
  // CSV rows whose quoted cells hold line breaks: the line each of their cells starts on.
  std::map<std::int64_t, std::vector<std::size_t>> cell_lines;
  // Where cell (row, column) came from, for messages; unset: "source:line:column" from `lines`.
  std::function<std::string(std::int64_t row, std::size_t column)> locate;

  std::string where(std::int64_t row, std::size_t column) const;
  // The column of that name, or null.
  const RawColumn* find(std::string_view name) const;
  std::vector<std::string> names() const;
};

// A CSV file with a header row, every cell kept as text. Errors give file:line:column: an
// unclosed quote, text after a closing quote, a row with another cell count than the header, a
// blank line between rows, a cell over kMaxCsvCellBytes, duplicate column names, no data rows.
RawTable read_csv_table(const std::filesystem::path& path, const CsvDialect& dialect = {});
// The same on bytes already in memory (raw or gzip); `where` names them in errors.
RawTable parse_csv_table(std::string_view bytes, const std::string& where,
                         const CsvDialect& dialect = {});

// SHA-256 of bytes, as 64 lowercase hex digits (what `sha256sum` prints): how a bundle names the
// file it was trained on.
std::string sha256_hex(std::string_view bytes);

// ---- The held-out split (src/data/dataset.cpp) ----

// Row indices of the three parts of a table of `rows` rows: `test_fraction` is held out with
// seed `seed`, then `validation_fraction` of the rest with seed `seed + 1`, exactly as
// random_split does on a dataset of those rows (so a bundle's split can be rebuilt from its
// numbers). Indices are into the original rows, in the order random_split gives them.
struct SplitRows {
  std::vector<std::int64_t> train, validation, test;
};
SplitRows split_rows(std::int64_t rows, double test_fraction, double validation_fraction,
                     std::uint64_t seed);

// ---- Encoding (src/data/table_encoding.cpp) ----

// How to turn a table into features, from the [data] section of a config.
struct TableOptions {
  std::string target;                    // the label (or regression target) column
  bool classification = true;            // labels -> class indices; else numbers
  std::vector<std::string> class_names;  // classification: given order; empty: from training
  std::vector<std::string> categorical;  // one-hot columns; others non-numeric are inferred
  std::vector<std::string> drop;         // columns not used
  std::vector<std::string> missing_values = {"", "NA", "NaN", "null"};  // cells that mean missing
  std::string impute = "none";  // numeric columns: none mean median most_frequent constant
  std::string impute_categorical = "none";  // categorical columns: none most_frequent constant
  std::map<std::string, std::string> impute_columns;  // per column, overriding the above
  double fill_value = 0;                              // constant, numeric columns
  std::string fill_category = "missing_value";        // constant, categorical columns
  bool missing_indicator = false;  // an indicator for each column with missing training cells
  std::vector<std::string> missing_indicator_columns;  // an indicator for these, always
  std::string unknown_category = "ignore";             // "ignore" (all zeros) or "error"
};

// What a fitted encoding does with one column.
struct EncodedColumn {
  enum class Kind { Numeric, Categorical };
  std::string name;
  Kind kind = Kind::Numeric;
  bool inferred = false;                 // categorical because its cells are not numbers
  std::vector<std::string> categories;   // categorical, sorted (byte order)
  std::string impute = "none";           // none mean median most_frequent constant
  double fill_number = 0;                // numeric imputation value
  std::string fill_category;             // categorical imputation value
  bool indicator = false;                // a 0/1 column "name_missing" after the column's own
  std::int64_t missing_in_training = 0;  // cells, for the summary
  std::int64_t width() const;
};

// A fitted encoding of a table: per column numeric (with its imputation and optional missing
// indicator) or one-hot categories; the label encoder. Fitted on the training rows only.
class TableEncoding {
 public:
  // Fits on `training_rows` of `table`. Which columns are categorical is decided from every row
  // (a column is the table's, not a split's): listed in options.categorical, or inferred when
  // none of its present cells is a number. A column mixing numbers and other text is an error at
  // its first non-number (list it as categorical to use it so). Errors name file:line:column.
  static TableEncoding fit(const RawTable& table, const std::vector<std::int64_t>& training_rows,
                           const TableOptions& options, const CsvDialect& dialect = {});

  // The features of `rows` of `table` (every row when null): float32 [rows, width()]. Columns
  // are found by name (others are ignored). Errors name the cell (table.where) and the column: a
  // missing column, a cell that is not a number in a numeric column, a missing value in a column
  // without imputation, an unknown category with unknown_category "error".
  Tensor transform(const RawTable& table, const std::vector<std::int64_t>* rows = nullptr) const;
  // The targets of `rows`: class indices int64 [rows] (a label never seen in training is an error
  // naming the cell and the value) or float32 [rows] for regression.
  Tensor transform_target(const RawTable& table,
                          const std::vector<std::int64_t>* rows = nullptr) const;

  std::int64_t width() const { return width_; }
  const std::vector<EncodedColumn>& columns() const { return columns_; }
  std::vector<std::string> column_names() const;
  // One name per feature: "bill_length_mm", "island=Biscoe", "sex_missing".
  std::vector<std::string> feature_names() const;
  const std::string& target() const { return target_; }
  bool classification() const { return classification_; }
  const std::vector<std::string>& classes() const { return classes_; }
  const std::vector<std::string>& missing_values() const { return missing_values_; }
  const std::string& unknown_category() const { return unknown_category_; }
  char delimiter() const { return delimiter_; }
  // True when every column is numeric without imputation or indicator: features are the
  // columns' numbers as they are.
  bool identity() const;
  // The choices made, one line each ("island: categorical (inferred), 3 categories"), for the
  // training log; empty lines are not returned.
  std::vector<std::string> describe() const;

  nlohmann::json to_json() const;
  // Rebuilds from JSON that may come from anywhere (a bundle): every field checked, errors name
  // the field ("encoding.columns[2].categories[0]: ...").
  static TableEncoding from_json(const nlohmann::json& json);

 private:
  std::string target_;
  bool classification_ = true;
  bool integer_labels_ = false;  // classes are the integers of the label column
  bool names_given_ = false;     // classes from the config: labels are names or indices
  std::vector<std::string> classes_;
  std::vector<EncodedColumn> columns_;
  std::vector<std::string> missing_values_;
  std::string unknown_category_ = "ignore";
  char delimiter_ = ',';
  std::int64_t width_ = 0;

  void finish();  // width_ from the columns
  bool is_missing(const RawColumn& column, std::int64_t row) const;
};

}  // namespace lathe
