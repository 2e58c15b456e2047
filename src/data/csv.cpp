// CSV with a header row, the RFC 4180 subset real data sets use: comma (or semicolon, or tab)
// separated, a cell may be wrapped in double quotes ("" inside quotes is one quote; delimiters and
// line breaks inside quotes are text), LF or CRLF line ends, an optional UTF-8 byte order mark.
// Spaces and tabs around a cell (outside its quotes) are ignored, tabs only where they are not
// the delimiter. Numeric readers (read_csv) parse every cell; read_csv_table keeps the text.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/table.h"
#include "src/data/csv_support.h"
#include "src/data/utf8.h"
#include "src/io/file_bytes.h"

namespace lathe {

namespace detail {

const char* parse_csv_number(std::string_view text, float& value) {
  const char* first = text.data();
  const char* const last = first + text.size();
  if (first != last && *first == '+') ++first;  // from_chars rejects a leading plus
  double parsed = 0;
  const auto [end, error] = std::from_chars(first, last, parsed);
  if (text.empty() || error == std::errc::invalid_argument || end != last) return "is not a number";
  if (error == std::errc::result_out_of_range) return "is out of range";
  if (!std::isfinite(parsed)) return "is not a finite number";
  if (std::abs(parsed) > std::numeric_limits<float>::max()) return "is outside the float32 range";
  value = static_cast<float>(parsed);
  return nullptr;
}

std::string shown_cell(std::string_view text) {
  constexpr std::size_t kMax = 40;
  std::string out;
  for (std::size_t i = 0; i < text.size() && i < kMax; ++i) {
    const auto byte = static_cast<unsigned char>(text[i]);
    if (byte < 0x20 || byte == 0x7F)
      out += fmt::format("\\x{:02X}", byte);
    else
      out += text[i];
  }
  return text.size() <= kMax ? out : out + "...";
}

std::string listed_columns(const std::vector<std::string>& names) {
  std::string out = fmt::format("{}", fmt::join(names, ", "));
  if (names.size() != 1) return out;
  for (const auto& [delimiter, words] :
       {std::pair{'\t', "tabs"}, std::pair{';', "semicolons"}, std::pair{',', "commas"}})
    if (names[0].find(delimiter) != std::string::npos)
      return out + fmt::format(
                       " (the header read as one column that holds {}: is that the file's "
                       "delimiter? [data] delimiter sets it for training, and a model reads the "
                       "delimiter it was trained with)",
                       words);
  return out;
}

}  // namespace detail

namespace {

using detail::parse_csv_number;

class CsvReader {
 public:
  CsvReader(std::string name, std::string_view text, char delimiter = ',')
      : name_(std::move(name)), text_(text), delimiter_(delimiter) {}

  // Reads the next record; false at the end of the text. A blank line is a record with no
  // cells and blank() true.
  bool next() {
    if (pos_ >= text_.size()) return false;
    record_line_ = line_;
    cells_.clear();
    cell_lines_.clear();
    blank_ = at_line_end();
    if (!blank_) {
      cells_.push_back(read_cell());
      while (pos_ < text_.size() && text_[pos_] == delimiter_) {
        ++pos_;
        cells_.push_back(read_cell());
      }
    }
    if (pos_ < text_.size() && text_[pos_] == '\r') ++pos_;
    if (pos_ < text_.size()) {  // at '\n'
      ++pos_;
      ++line_;
    }
    return true;
  }

  const std::vector<std::string>& cells() const { return cells_; }
  bool blank() const { return blank_; }
  std::size_t line() const { return record_line_; }  // the line the record starts on, from 1
  // The line cell j starts on: the record's, unless a quoted cell before it held line breaks.
  std::size_t cell_line(std::size_t j) const {
    return j < cell_lines_.size() ? cell_lines_[j] : record_line_;
  }
  // Whether a quoted cell of the record held a line break (so cells start on other lines).
  bool spans_lines() const { return !cell_lines_.empty() && cell_lines_.back() != record_line_; }

 private:
  // At '\n', "\r\n", a final '\r', or the end of the text.
  bool at_line_end() const {
    if (pos_ == text_.size() || text_[pos_] == '\n') return true;
    return text_[pos_] == '\r' && (pos_ + 1 == text_.size() || text_[pos_ + 1] == '\n');
  }

  bool is_space(char c) const { return c == ' ' || (c == '\t' && delimiter_ != '\t'); }

  void skip_spaces() {
    while (pos_ < text_.size() && is_space(text_[pos_])) ++pos_;
  }

  [[noreturn]] void too_long(std::size_t line, std::size_t column) const {
    throw Error(
        fmt::format("{}:{}:{}: a cell of more than {} bytes (1 MiB), the longest a CSV cell "
                    "may be; is a quote left open?",
                    name_, line, column, kMaxCsvCellBytes));
  }

  std::string read_cell() {
    const std::size_t column = cells_.size() + 1;
    cell_lines_.push_back(line_);
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] == '"') return read_quoted_cell(column);
    const std::size_t begin = pos_;
    while (pos_ < text_.size() && text_[pos_] != delimiter_ && !at_line_end()) ++pos_;
    std::string_view cell = text_.substr(begin, pos_ - begin);
    while (!cell.empty() && is_space(cell.back())) cell.remove_suffix(1);
    if (cell.size() > kMaxCsvCellBytes) too_long(line_, column);
    check_utf8(cell, line_, column);
    return std::string(cell);
  }

  std::string read_quoted_cell(std::size_t column) {
    const std::size_t open_line = line_;
    std::string cell;
    ++pos_;
    for (;;) {
      if (pos_ == text_.size())
        throw Error(
            fmt::format("{}:{}:{}: the quoted cell is never closed", name_, open_line, column));
      const char c = text_[pos_++];
      if (c == '"') {
        if (pos_ == text_.size() || text_[pos_] != '"') break;
        ++pos_;  // "" is an escaped quote
      } else if (c == '\n') {
        ++line_;
      }
      if (cell.size() == kMaxCsvCellBytes) too_long(open_line, column);
      cell += c;
    }
    skip_spaces();
    if (pos_ < text_.size() && text_[pos_] != delimiter_ && !at_line_end())
      throw Error(fmt::format(
          "{}:{}:{}: unexpected '{}' after the closing quote; expected {} or the end of the line",
          name_, line_, column, detail_printable(text_[pos_]), delimiter_words()));
    check_utf8(cell, open_line, column);
    return cell;
  }

  // Text cells become category and class names, kept in bundles as JSON strings.
  void check_utf8(std::string_view cell, std::size_t line, std::size_t column) const {
    const std::string problem = detail::utf8_problem(cell);
    if (!problem.empty())
      throw Error(fmt::format(
          "{}:{}:{}: the cell is not UTF-8 text (in the cell, {}); lathe reads CSV files as "
          "UTF-8: convert this one (from Windows-1252, say: iconv -f WINDOWS-1252 -t UTF-8)",
          name_, line, column, problem));
  }

  static std::string detail_printable(char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte >= 0x7F ? fmt::format("\\x{:02X}", byte) : std::string(1, c);
  }
  std::string delimiter_words() const {
    return delimiter_ == ',' ? "a comma" : delimiter_ == ';' ? "a semicolon" : "a tab";
  }

  std::string name_;
  std::string_view text_;
  char delimiter_;
  std::size_t pos_ = 0, line_ = 1, record_line_ = 1;
  std::vector<std::string> cells_;
  std::vector<std::size_t> cell_lines_;
  bool blank_ = false;
};

// The text of CSV bytes: gunzipped if they are gzip data (kept in `inflated`), without a UTF-8
// byte order mark.
std::string_view csv_text(std::string_view bytes, const std::string& name,
                          std::optional<std::vector<unsigned char>>& inflated) {
  inflated = detail::gunzip_if_compressed(bytes, name);
  std::string_view text = inflated ? detail::as_chars(*inflated) : bytes;
  if (text.starts_with("\xEF\xBB\xBF")) text.remove_prefix(3);
  if (text.starts_with("\xFF\xFE") || text.starts_with("\xFE\xFF"))
    throw Error(
        fmt::format("{}: the file is UTF-16 text (it starts with a UTF-16 byte order "
                    "mark); lathe reads CSV files as UTF-8: save it as UTF-8",
                    name));
  if (const std::size_t nul = text.find('\0'); nul != std::string_view::npos)
    throw Error(
        fmt::format("{}: a NUL byte at byte offset {}: the file is not UTF-8 text (UTF-16 "
                    "without a byte order mark, or not text at all); lathe reads CSV "
                    "files as UTF-8",
                    name, nul));
  const std::size_t carriage_return = text.find('\r');
  if (text.find('\n') == std::string_view::npos && carriage_return != std::string_view::npos &&
      carriage_return + 1 < text.size())
    throw Error(
        fmt::format("{}: the lines end with a carriage return alone (old Mac line "
                    "ends); lathe reads LF or CRLF: convert the file (tr '\\r' '\\n' <in >out)",
                    name));
  return text;
}

std::vector<std::string> read_header(CsvReader& reader, const std::string& name) {
  if (!reader.next()) throw Error(fmt::format("{}: empty file; expected a header row", name));
  if (reader.blank())
    throw Error(fmt::format("{}:1: the header row is empty; expected column names", name));
  return reader.cells();
}

// The index of each column name in the header `columns`; a name that appears twice is an error
// where it `matters` (a column a caller reads).
template <class Matters>
std::unordered_map<std::string_view, std::size_t> index_columns(
    const std::vector<std::string>& columns, const std::string& name, const Matters& matters) {
  std::unordered_map<std::string_view, std::size_t> first;
  for (std::size_t j = 0; j < columns.size(); ++j)
    if (const auto [at, added] = first.emplace(columns[j], j); !added && matters(columns[j])) {
      float number = 0;
      const bool data = !parse_csv_number(columns[j], number);
      throw Error(fmt::format("{}:1:{}: duplicate column name '{}' (also column {}){}", name, j + 1,
                              columns[j], at->second + 1,
                              data ? "; is the first row data? A CSV file starts with a row of "
                                     "column names"
                                   : ""));
    }
  return first;
}

void check_unique(const std::vector<std::string>& columns, const std::string& name) {
  index_columns(columns, name, [](std::string_view) { return true; });
}

// Moves `reader` to the next data row, false at the end. Blank lines may only trail: one
// followed by a row is an error (`blank_line` remembers the first not yet known to trail), as is
// a row without the header's cell count.
bool next_data_row(CsvReader& reader, const std::string& name, std::size_t columns,
                   std::size_t& blank_line) {
  while (reader.next()) {
    if (reader.blank()) {
      if (blank_line == 0) blank_line = reader.line();
      continue;
    }
    if (blank_line != 0)
      throw Error(fmt::format("{}:{}: empty line between data rows; expected {} cells", name,
                              blank_line, columns));
    if (reader.cells().size() != columns)
      throw Error(fmt::format("{}:{}: row has {} cells, the header has {}", name, reader.line(),
                              reader.cells().size(), columns));
    return true;
  }
  return false;
}

// The data rows after the header: the numbers of the `picked` columns (header indices), row by
// row, in the order of `picked`. Every row must have the header's cell count; blank lines may only
// trail. `rows` is set to the number of rows (at least 1).
std::vector<float> read_numbers(CsvReader& reader, const std::string& name,
                                const std::vector<std::string>& header,
                                const std::vector<std::size_t>& picked, std::size_t& rows) {
  std::vector<float> values;
  rows = 0;
  std::size_t blank_line = 0;
  while (next_data_row(reader, name, header.size(), blank_line)) {
    const auto& cells = reader.cells();
    for (const std::size_t j : picked) {
      float value = 0;
      if (const char* problem = parse_csv_number(cells[j], value))
        throw Error(fmt::format("{}:{}:{}: column '{}': '{}' {}", name, reader.cell_line(j), j + 1,
                                header[j], detail::shown_cell(cells[j]), problem));
      values.push_back(value);
    }
    ++rows;
  }
  if (rows == 0) throw Error(fmt::format("{}: no data rows after the header", name));
  return values;
}

}  // namespace

char CsvDialect::delimiter_from_name(const std::string& name) {
  if (name == ",") return ',';
  if (name == ";") return ';';
  // "\\t" is what `--set data.delimiter=\t` gives, the escape a TOML string would read.
  if (name == "\t" || name == "\\t" || name == "tab") return '\t';
  throw Error(
      fmt::format("delimiter \"{}\" is not one lathe reads; use \",\", \";\" or \"\\t\"", name));
}

std::string CsvDialect::delimiter_name(char delimiter) {
  return delimiter == '\t' ? "\t" : std::string(1, delimiter);
}

void TextCells::push_back(std::string_view cell) {
  text_.append(cell);
  ends_.push_back(text_.size());
}

std::string RawTable::where(std::int64_t row, std::size_t column) const {
  if (locate) return locate(row, column);
  if (const auto spanning = cell_lines.find(row);
      spanning != cell_lines.end() && column < spanning->second.size())
    return fmt::format("{}:{}:{}", source, spanning->second[column], column + 1);
  if (static_cast<std::size_t>(row) < lines.size())
    return fmt::format("{}:{}:{}", source, lines[static_cast<std::size_t>(row)], column + 1);
  return fmt::format("{}: row {}, column {}", source, row, column + 1);
}

const RawColumn* RawTable::find(std::string_view name) const {
  for (const RawColumn& column : columns)
    if (column.name == name) return &column;
  return nullptr;
}

std::vector<std::string> RawTable::names() const {
  std::vector<std::string> out;
  for (const RawColumn& column : columns) out.push_back(column.name);
  return out;
}

RawTable read_csv_table(const std::filesystem::path& path, const CsvDialect& dialect) {
  return parse_csv_table(detail::as_chars(detail::read_raw_file(path)), path.string(), dialect);
}

RawTable parse_csv_table(std::string_view bytes, const std::string& where,
                         const CsvDialect& dialect) {
  const std::string& name = where;
  std::optional<std::vector<unsigned char>> inflated;
  CsvReader reader(name, csv_text(bytes, name, inflated), dialect.delimiter);
  const std::vector<std::string> header = read_header(reader, name);
  check_unique(header, name);
  RawTable table;
  table.source = name;
  for (const std::string& column : header) table.columns.push_back({.name = column});
  std::size_t blank_line = 0;
  while (next_data_row(reader, name, header.size(), blank_line)) {
    const auto& cells = reader.cells();
    for (std::size_t j = 0; j < cells.size(); ++j) table.columns[j].text.push_back(cells[j]);
    if (reader.spans_lines()) {
      std::vector<std::size_t>& lines = table.cell_lines[table.rows];
      for (std::size_t j = 0; j < cells.size(); ++j) lines.push_back(reader.cell_line(j));
    }
    table.lines.push_back(reader.line());
    ++table.rows;
  }
  if (table.rows == 0) throw Error(fmt::format("{}: no data rows after the header", name));
  return table;
}

CsvTable read_csv(const std::filesystem::path& path, const std::string& target) {
  return parse_csv(detail::as_chars(detail::read_raw_file(path)), path.string(), target);
}

CsvTable parse_csv(std::string_view bytes, const std::string& where, const std::string& target) {
  const std::string& name = where;
  std::optional<std::vector<unsigned char>> inflated;
  CsvReader reader(name, csv_text(bytes, name, inflated));
  const std::vector<std::string> columns = read_header(reader, name);
  check_unique(columns, name);

  CsvTable table;
  table.target_name = target;
  std::vector<std::size_t> every(columns.size());  // each row is read whole, in header order
  std::size_t target_column = columns.size();
  for (std::size_t j = 0; j < columns.size(); ++j) {
    every[j] = j;
    if (columns[j] == target)
      target_column = j;
    else
      table.feature_names.push_back(columns[j]);
  }
  if (target_column == columns.size())
    throw Error(fmt::format("{}: target column '{}' not found; columns are: {}", name, target,
                            detail::listed_columns(columns)));
  if (table.feature_names.empty())
    throw Error(
        fmt::format("{}: no feature columns; the only column is the target '{}'", name, target));

  std::size_t rows = 0;
  const std::vector<float> values = read_numbers(reader, name, columns, every, rows);
  const std::size_t width = columns.size();
  table.features =
      Tensor::empty({static_cast<std::int64_t>(rows), static_cast<std::int64_t>(width - 1)});
  table.targets = Tensor::empty({static_cast<std::int64_t>(rows)});
  float* feature_out = table.features.data<float>();
  float* target_out = table.targets.data<float>();
  for (std::size_t r = 0; r < rows; ++r) {
    const float* row = values.data() + r * width;
    feature_out = std::copy(row, row + target_column, feature_out);
    feature_out = std::copy(row + target_column + 1, row + width, feature_out);
    target_out[r] = row[target_column];
  }
  return table;
}

CsvTable read_csv_columns(const std::filesystem::path& path,
                          const std::vector<std::string>& columns) {
  return parse_csv_columns(detail::as_chars(detail::read_raw_file(path)), path.string(), columns);
}

CsvTable parse_csv_columns(std::string_view bytes, const std::string& where,
                           const std::vector<std::string>& columns) {
  const std::string& name = where;
  std::optional<std::vector<unsigned char>> inflated;
  CsvReader reader(name, csv_text(bytes, name, inflated));
  const std::vector<std::string> header = read_header(reader, name);
  CsvTable table;
  table.feature_names = columns.empty() ? header : columns;
  std::vector<std::size_t> picked;  // header index of each wanted column
  const std::unordered_set<std::string_view> wanted_names(table.feature_names.begin(),
                                                          table.feature_names.end());
  const auto index = index_columns(
      header, name, [&](std::string_view column) { return wanted_names.count(column) > 0; });
  for (const std::string& wanted : table.feature_names) {
    const auto found = index.find(wanted);
    if (found == index.end())
      throw Error(fmt::format("{}: column '{}' not found; columns are: {}", name, wanted,
                              detail::listed_columns(header)));
    picked.push_back(found->second);
  }

  std::size_t rows = 0;
  const std::vector<float> values = read_numbers(reader, name, header, picked, rows);
  table.features = Tensor::empty(
      {static_cast<std::int64_t>(rows), static_cast<std::int64_t>(table.feature_names.size())});
  std::copy(values.begin(), values.end(), table.features.data<float>());
  return table;
}

}  // namespace lathe
