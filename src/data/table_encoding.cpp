// TableEncoding: raw table cells to float features and class indices, fitted on training rows.
//
// Per column, in the table's order (target and dropped columns left out): a numeric column is one
// feature (its number, or the imputed value where the cell is missing), a categorical column one
// feature per category seen in training (one-hot, categories in byte order as scikit-learn's
// OneHotEncoder sorts them; an unknown category is all zeros or an error); either may add a 0/1
// missing-indicator feature after its own. Class names are the training labels sorted as
// scikit-learn's LabelEncoder sorts them (integers by value, text by bytes) unless given.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <unordered_map>

#include "lathe/error.h"
#include "lathe/table.h"
#include "src/data/csv_support.h"

namespace lathe {
namespace {

using detail::shown_cell;
using nlohmann::json;

constexpr const char* kImputeMethods[] = {"none", "mean", "median", "most_frequent", "constant"};
// A bound on what a bundle may ask for: features per example, categories per column.
constexpr std::int64_t kMaxFeatures = std::int64_t{1} << 24;
constexpr std::size_t kMaxCategories = std::size_t{1} << 20;

bool contains(const std::vector<std::string>& list, std::string_view value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// A list for a message: the first `max` items, then how many more.
std::string listed(const std::vector<std::string>& items, std::size_t max = 10) {
  std::vector<std::string> shown;
  for (std::size_t i = 0; i < items.size() && i < max; ++i) shown.push_back(shown_cell(items[i]));
  std::string text = fmt::format("{}", fmt::join(shown, ", "));
  if (items.size() > max) text += fmt::format(", ... ({} in all)", items.size());
  return text;
}

// A text cell as an integer label, if it is one ("3", "-1"; not "3.0").
std::optional<std::int64_t> integer_label(std::string_view text) {
  std::int64_t value = 0;
  const char* first = text.data();
  const char* last = first + text.size();
  if (first != last && *first == '+') ++first;
  const auto [end, error] = std::from_chars(first, last, value);
  if (text.empty() || error != std::errc() || end != last) return std::nullopt;
  return value;
}

// The text of a cell of any column: numbers (serve's numeric inputs) in their shortest form.
std::string cell_text(const RawColumn& column, std::int64_t row) {
  if (column.numeric) return fmt::format("{}", column.numbers[static_cast<std::size_t>(row)]);
  return std::string(column.text[static_cast<std::size_t>(row)]);
}

// The most frequent value of a sorted list; the smallest among ties (scikit-learn's choice).
template <typename T>
T most_frequent(const std::vector<T>& sorted) {
  T best = sorted.front();
  std::size_t best_count = 0;
  for (std::size_t i = 0; i < sorted.size();) {
    std::size_t j = i;
    while (j < sorted.size() && sorted[j] == sorted[i]) ++j;
    if (j - i > best_count) {
      best_count = j - i;
      best = sorted[i];
    }
    i = j;
  }
  return best;
}

// ---- JSON fields, checked (the encoding comes from a bundle, which may come from anywhere) ----

[[noreturn]] void bad(const std::string& field, const std::string& what) {
  throw Error(fmt::format("{}: {}", field, what));
}

const json& member(const json& object, const char* key, const std::string& field) {
  const auto found = object.find(key);
  if (found == object.end()) bad(field + "." + key, "missing");
  return *found;
}

std::string string_member(const json& object, const char* key, const std::string& field) {
  const json& value = member(object, key, field);
  if (!value.is_string())
    bad(field + "." + key, fmt::format("expected a string, got {}", value.type_name()));
  return value.get<std::string>();
}

bool bool_member(const json& object, const char* key, const std::string& field, bool fallback) {
  const auto found = object.find(key);
  if (found == object.end()) return fallback;
  if (!found->is_boolean())
    bad(field + "." + key, fmt::format("expected true or false, got {}", found->type_name()));
  return found->get<bool>();
}

std::vector<std::string> strings_member(const json& object, const char* key,
                                        const std::string& field, bool sorted_unique) {
  const json& value = member(object, key, field);
  if (!value.is_array())
    bad(field + "." + key, fmt::format("expected an array of strings, got {}", value.type_name()));
  if (value.size() > kMaxCategories)
    bad(field + "." + key, fmt::format("{} entries; at most {}", value.size(), kMaxCategories));
  std::vector<std::string> out;
  for (std::size_t i = 0; i < value.size(); ++i) {
    if (!value[i].is_string())
      bad(fmt::format("{}.{}[{}]", field, key, i),
          fmt::format("expected a string, got {}", value[i].type_name()));
    out.push_back(value[i].get<std::string>());
    if (sorted_unique && i > 0 && !(out[i - 1] < out[i]))
      bad(fmt::format("{}.{}[{}]", field, key, i),
          "the entries must be sorted (byte order) and distinct");
  }
  return out;
}

}  // namespace

std::int64_t EncodedColumn::width() const {
  const std::int64_t own = kind == Kind::Numeric ? 1 : static_cast<std::int64_t>(categories.size());
  return own + (indicator ? 1 : 0);
}

bool TableEncoding::is_missing(const RawColumn& column, std::int64_t row) const {
  if (column.numeric) return std::isnan(column.numbers[static_cast<std::size_t>(row)]);
  if (column.is_null(row)) return true;
  return contains(missing_values_, column.text[static_cast<std::size_t>(row)]);
}

void TableEncoding::finish() {
  width_ = 0;
  for (const EncodedColumn& column : columns_) width_ += column.width();
}

TableEncoding TableEncoding::fit(const RawTable& table,
                                 const std::vector<std::int64_t>& training_rows,
                                 const TableOptions& options, const CsvDialect& dialect) {
  const std::string& source = table.source;
  const std::vector<std::string> names = table.names();
  const auto column_index = [&](const std::string& name) {
    return static_cast<std::size_t>(std::find(names.begin(), names.end(), name) - names.begin());
  };
  if (column_index(options.target) == names.size())
    throw Error(fmt::format("{}: target column '{}' not found; columns are: {}", source,
                            options.target, detail::listed_columns(names)));
  // Every column the options name must exist and must not be the target.
  const auto check_named = [&](const std::string& name, const char* key) {
    if (column_index(name) == names.size())
      throw Error(
          fmt::format("{}: [data] {} names column '{}', which the file does not have; "
                      "columns are: {}",
                      source, key, name, fmt::join(names, ", ")));
    if (name == options.target)
      throw Error(fmt::format("{}: [data] {} names '{}', the target column", source, key, name));
  };
  for (const std::string& name : options.categorical) check_named(name, "categorical");
  for (const std::string& name : options.drop) {
    check_named(name, "drop");
    if (contains(options.categorical, name))
      throw Error(
          fmt::format("{}: [data] column '{}' is both in categorical and in drop", source, name));
  }
  for (const auto& [name, method] : options.impute_columns) {
    check_named(name, "impute_columns");
    if (contains(options.drop, name))
      throw Error(
          fmt::format("{}: [data] impute_columns names '{}', a dropped column", source, name));
  }
  for (const std::string& name : options.missing_indicator_columns) {
    check_named(name, "missing_indicator");
    if (contains(options.drop, name))
      throw Error(
          fmt::format("{}: [data] missing_indicator names '{}', a dropped column", source, name));
  }
  if (training_rows.empty()) throw Error(fmt::format("{}: no training rows to fit on", source));
  for (const std::int64_t row : training_rows)
    if (row < 0 || row >= table.rows)
      throw Error(fmt::format("{}: training row {} is not a row of the table", source, row));

  TableEncoding encoding;
  encoding.target_ = options.target;
  encoding.classification_ = options.classification;
  encoding.missing_values_ = options.missing_values;
  encoding.unknown_category_ = options.unknown_category;
  encoding.delimiter_ = dialect.delimiter;
  if (options.unknown_category != "ignore" && options.unknown_category != "error")
    throw Error(fmt::format("unknown_category is \"{}\"; allowed: ignore, error",
                            options.unknown_category));

  for (std::size_t j = 0; j < table.columns.size(); ++j) {
    const RawColumn& raw = table.columns[j];
    if (raw.name == options.target || contains(options.drop, raw.name)) continue;
    EncodedColumn column;
    column.name = raw.name;
    // Which kind: listed, or from the cells of every row.
    if (contains(options.categorical, raw.name)) {
      column.kind = EncodedColumn::Kind::Categorical;
    } else if (!raw.numeric) {
      std::int64_t numbers = 0, first_text = -1;
      float unused = 0;
      for (std::int64_t r = 0; r < table.rows; ++r) {
        if (encoding.is_missing(raw, r)) continue;
        if (!detail::parse_csv_number(raw.text[static_cast<std::size_t>(r)], unused))
          ++numbers;
        else if (first_text < 0)
          first_text = r;
      }
      if (first_text >= 0 && numbers > 0) {
        float value = 0;
        const std::string_view cell = raw.text[static_cast<std::size_t>(first_text)];
        throw Error(fmt::format(
            "{}: column '{}': '{}' {}, and {} other cells of the column are numbers (list the "
            "column in [data] categorical to take its values as categories)",
            table.where(first_text, j), raw.name, shown_cell(cell),
            detail::parse_csv_number(cell, value), numbers));
      }
      if (first_text < 0 && numbers == 0)
        throw Error(fmt::format(
            "{}: column '{}': every cell is missing ({} rows); leave it out with [data] drop = "
            "[\"{}\"]",
            table.where(0, j), raw.name, table.rows, raw.name));
      if (first_text >= 0) {
        column.kind = EncodedColumn::Kind::Categorical;
        column.inferred = true;
      }
    }
    const bool categorical = column.kind == EncodedColumn::Kind::Categorical;
    const auto own = options.impute_columns.find(raw.name);
    column.impute = own != options.impute_columns.end()
                        ? own->second
                        : (categorical ? options.impute_categorical : options.impute);
    if (!contains({std::begin(kImputeMethods), std::end(kImputeMethods)}, column.impute))
      throw Error(fmt::format("{}: [data] column '{}': imputation \"{}\"; allowed: {}", source,
                              raw.name, column.impute, fmt::join(kImputeMethods, ", ")));
    if (categorical && (column.impute == "mean" || column.impute == "median"))
      throw Error(fmt::format(
          "{}: [data] column '{}' is categorical{}: imputation \"{}\" is for numeric columns; "
          "use most_frequent or constant",
          source, raw.name, column.inferred ? " (its cells are not numbers)" : "", column.impute));

    // The training rows' values.
    std::vector<float> numbers;
    std::vector<std::string> texts;
    for (const std::int64_t r : training_rows) {
      if (encoding.is_missing(raw, r)) {
        ++column.missing_in_training;
      } else if (categorical) {
        texts.push_back(cell_text(raw, r));
      } else if (raw.numeric) {
        numbers.push_back(raw.numbers[static_cast<std::size_t>(r)]);
      } else {
        float value = 0;
        const std::string_view cell = raw.text[static_cast<std::size_t>(r)];
        if (const char* problem = detail::parse_csv_number(cell, value))
          throw Error(fmt::format("{}: column '{}': '{}' {}", table.where(r, j), raw.name,
                                  shown_cell(cell), problem));
        numbers.push_back(value);
      }
    }
    if (numbers.empty() && texts.empty())
      throw Error(fmt::format(
          "{}: column '{}': every cell of the training split is missing ({} rows), so nothing "
          "can be learned from it; leave it out with [data] drop = [\"{}\"]",
          table.where(training_rows.front(), j), raw.name, training_rows.size(), raw.name));
    column.indicator = contains(options.missing_indicator_columns, raw.name) ||
                       (options.missing_indicator && column.missing_in_training > 0);
    if (categorical) {
      std::sort(texts.begin(), texts.end());
      if (column.impute == "most_frequent") column.fill_category = most_frequent(texts);
      if (column.impute == "constant") column.fill_category = options.fill_category;
      std::set<std::string> categories(texts.begin(), texts.end());
      if (column.impute != "none" && column.missing_in_training > 0)
        categories.insert(column.fill_category);
      column.categories.assign(categories.begin(), categories.end());
      if (column.categories.size() > kMaxCategories)
        throw Error(fmt::format("{}: column '{}' has {} categories; at most {}", source, raw.name,
                                column.categories.size(), kMaxCategories));
    } else {
      std::sort(numbers.begin(), numbers.end());
      const std::size_t n = numbers.size();
      if (column.impute == "mean") {
        double sum = 0;
        for (const float v : numbers) sum += v;
        column.fill_number = sum / static_cast<double>(n);
      } else if (column.impute == "median") {
        column.fill_number =
            n % 2 ? numbers[n / 2] : (static_cast<double>(numbers[n / 2 - 1]) + numbers[n / 2]) / 2;
      } else if (column.impute == "most_frequent") {
        column.fill_number = most_frequent(numbers);
      } else if (column.impute == "constant") {
        column.fill_number = options.fill_value;
      }
    }
    encoding.columns_.push_back(std::move(column));
  }
  if (encoding.columns_.empty())
    throw Error(
        fmt::format("{}: no feature columns left besides the target '{}'", source, options.target));
  encoding.finish();
  if (encoding.width_ > kMaxFeatures)
    throw Error(fmt::format("{}: the encoding has {} features; at most {}", source, encoding.width_,
                            kMaxFeatures));

  if (!options.classification) return encoding;
  // The label encoder.
  const std::size_t target = column_index(options.target);
  const RawColumn& labels = table.columns[target];
  std::vector<std::string> seen;
  for (const std::int64_t r : training_rows) {
    if (labels.numeric ? std::isnan(labels.numbers[static_cast<std::size_t>(r)])
                       : labels.is_null(r) || contains(options.missing_values,
                                                       labels.text[static_cast<std::size_t>(r)]))
      throw Error(fmt::format("{}: column '{}': the label is missing ('{}')",
                              table.where(r, target), options.target,
                              shown_cell(cell_text(labels, r))));
    seen.push_back(cell_text(labels, r));
  }
  if (!options.class_names.empty()) {
    encoding.classes_ = options.class_names;
    encoding.names_given_ = true;
  } else {
    encoding.integer_labels_ = std::all_of(seen.begin(), seen.end(), [](const std::string& s) {
      return integer_label(s).has_value();
    });
    if (encoding.integer_labels_) {
      std::set<std::int64_t> values;
      for (const std::string& s : seen) values.insert(*integer_label(s));
      for (const std::int64_t v : values) encoding.classes_.push_back(std::to_string(v));
    } else {
      const std::set<std::string> values(seen.begin(), seen.end());
      encoding.classes_.assign(values.begin(), values.end());
    }
  }
  if (encoding.classes_.size() < 2)
    throw Error(fmt::format(
        "{}: column '{}': the training split has one class only ('{}'); a classifier needs two "
        "or more",
        table.where(training_rows.front(), target), options.target,
        shown_cell(encoding.classes_.empty() ? seen.front() : encoding.classes_.front())));
  // With given names every training label must be one of them.
  encoding.transform_target(table, &training_rows);
  return encoding;
}

Tensor TableEncoding::transform(const RawTable& table,
                                const std::vector<std::int64_t>* rows) const {
  const auto count =
      rows ? static_cast<std::int64_t>(rows->size()) : static_cast<std::int64_t>(table.rows);
  // Each encoded column's raw column, its index (for messages) and its first feature.
  struct Source {
    const RawColumn* raw;
    std::size_t index;
    std::int64_t offset;
  };
  std::vector<Source> sources;
  std::int64_t offset = 0;
  // By name, once: a table of 100,000 columns looked up one by one took half a minute.
  std::unordered_map<std::string_view, const RawColumn*> by_name;
  for (const RawColumn& raw : table.columns) by_name.emplace(raw.name, &raw);
  for (const EncodedColumn& column : columns_) {
    const auto found = by_name.find(column.name);
    const RawColumn* raw = found == by_name.end() ? nullptr : found->second;
    if (!raw)
      throw Error(fmt::format("{}: column '{}' not found; columns are: {}", table.source,
                              column.name, detail::listed_columns(table.names())));
    sources.push_back({raw, static_cast<std::size_t>(raw - table.columns.data()), offset});
    offset += column.width();
  }
  Tensor out = Tensor::zeros({count, width_});
  float* data = out.data<float>();
  // Row by row, so that the first error is the first bad cell in the file's order.
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t r = rows ? (*rows)[static_cast<std::size_t>(i)] : i;
    if (r < 0 || r >= table.rows)
      throw Error(fmt::format("{}: row {} is not a row of the table", table.source, r));
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const EncodedColumn& column = columns_[c];
      const RawColumn& raw = *sources[c].raw;
      const std::size_t j = sources[c].index;
      float* features = data + i * width_ + sources[c].offset;
      const bool missing = is_missing(raw, r);
      if (missing) {
        if (column.impute == "none")
          throw Error(fmt::format(
              "{}: column '{}': missing value '{}', and the column has no imputation ([data] "
              "impute, impute_categorical or impute_columns when training)",
              table.where(r, j), column.name,
              shown_cell(raw.is_null(r) ? "null" : cell_text(raw, r))));
        if (column.indicator) features[column.width() - 1] = 1;
      }
      if (column.kind == EncodedColumn::Kind::Numeric) {
        if (missing) {
          features[0] = static_cast<float>(column.fill_number);
        } else if (raw.numeric) {
          features[0] = raw.numbers[static_cast<std::size_t>(r)];
        } else {
          const std::string_view cell = raw.text[static_cast<std::size_t>(r)];
          if (const char* problem = detail::parse_csv_number(cell, features[0]))
            throw Error(fmt::format("{}: column '{}': '{}' {}", table.where(r, j), column.name,
                                    shown_cell(cell), problem));
        }
        continue;
      }
      const std::string text = missing ? column.fill_category : cell_text(raw, r);
      const auto found = std::lower_bound(column.categories.begin(), column.categories.end(), text);
      if (found != column.categories.end() && *found == text) {
        features[found - column.categories.begin()] = 1;
      } else if (unknown_category_ == "error" && missing) {
        throw Error(fmt::format(
            "{}: column '{}': missing value, filled with '{}', which is not a category: the "
            "column had no missing cells in training, and unknown_category is \"error\"",
            table.where(r, j), column.name, shown_cell(text)));
      } else if (unknown_category_ == "error") {
        throw Error(fmt::format(
            "{}: column '{}': '{}' is not a category seen in training ({}), and "
            "unknown_category is \"error\"",
            table.where(r, j), column.name, shown_cell(text), listed(column.categories)));
      }
    }
  }
  return out;
}

Tensor TableEncoding::transform_target(const RawTable& table,
                                       const std::vector<std::int64_t>* rows) const {
  const RawColumn* raw = table.find(target_);
  if (!raw)
    throw Error(fmt::format("{}: target column '{}' not found; columns are: {}", table.source,
                            target_, detail::listed_columns(table.names())));
  const auto j = static_cast<std::size_t>(raw - table.columns.data());
  const auto count =
      rows ? static_cast<std::int64_t>(rows->size()) : static_cast<std::int64_t>(table.rows);
  std::vector<std::int64_t> labels;
  Tensor values = classification_ ? Tensor() : Tensor::empty({count});
  for (std::int64_t i = 0; i < count; ++i) {
    const std::int64_t r = rows ? (*rows)[static_cast<std::size_t>(i)] : i;
    if (r < 0 || r >= table.rows)
      throw Error(fmt::format("{}: row {} is not a row of the table", table.source, r));
    if (is_missing(*raw, r))
      throw Error(fmt::format("{}: column '{}': the {} is missing ('{}')", table.where(r, j),
                              target_, classification_ ? "label" : "target",
                              shown_cell(raw->is_null(r) ? "null" : cell_text(*raw, r))));
    if (!classification_) {
      float* value = values.data<float>() + i;
      if (raw->numeric) {
        *value = raw->numbers[static_cast<std::size_t>(r)];
      } else {
        const std::string_view cell = raw->text[static_cast<std::size_t>(r)];
        if (const char* problem = detail::parse_csv_number(cell, *value))
          throw Error(fmt::format("{}: column '{}': '{}' {}", table.where(r, j), target_,
                                  shown_cell(cell), problem));
      }
      continue;
    }
    std::string text = cell_text(*raw, r);
    if (integer_labels_)
      if (const auto value = integer_label(text)) text = std::to_string(*value);
    auto found = std::find(classes_.begin(), classes_.end(), text);
    std::int64_t index = found - classes_.begin();
    if (found == classes_.end() && names_given_) {
      // Given class names also take the labels as indices into them (as IDX labels are).
      const auto value = integer_label(text);
      if (value && *value >= 0 && *value < static_cast<std::int64_t>(classes_.size()))
        index = *value;
    }
    if (index == static_cast<std::int64_t>(classes_.size()))
      throw Error(fmt::format(
          "{}: column '{}': label '{}' is not one of the {} classes the model was trained on "
          "({})",
          table.where(r, j), target_, shown_cell(text), classes_.size(), listed(classes_)));
    labels.push_back(index);
  }
  return classification_ ? Tensor::from_indices(labels, {count}) : values;
}

std::vector<std::string> TableEncoding::column_names() const {
  std::vector<std::string> names;
  for (const EncodedColumn& column : columns_) names.push_back(column.name);
  return names;
}

std::vector<std::string> TableEncoding::feature_names() const {
  std::vector<std::string> names;
  for (const EncodedColumn& column : columns_) {
    if (column.kind == EncodedColumn::Kind::Numeric)
      names.push_back(column.name);
    else
      for (const std::string& category : column.categories)
        names.push_back(column.name + "=" + category);
    if (column.indicator) names.push_back(column.name + "_missing");
  }
  return names;
}

bool TableEncoding::identity() const {
  return std::all_of(columns_.begin(), columns_.end(), [](const EncodedColumn& c) {
    return c.kind == EncodedColumn::Kind::Numeric && c.impute == "none" && !c.indicator;
  });
}

std::vector<std::string> TableEncoding::describe() const {
  std::vector<std::string> lines;
  for (const EncodedColumn& column : columns_) {
    std::string line = column.name + ": ";
    if (column.kind == EncodedColumn::Kind::Categorical)
      line += fmt::format("one-hot, {} categories{}", column.categories.size(),
                          column.inferred ? " (inferred: its cells are not numbers)" : "");
    else
      line += "numeric";
    if (column.impute != "none") {
      line += fmt::format("; {} missing in training, imputed: {} (", column.missing_in_training,
                          column.impute);
      line += column.kind == EncodedColumn::Kind::Numeric
                  ? fmt::format("{:.6g})", column.fill_number)
                  : fmt::format("'{}')", shown_cell(column.fill_category));
    }
    if (column.indicator) line += "; missing indicator";
    lines.push_back(std::move(line));
  }
  return lines;
}

json TableEncoding::to_json() const {
  json columns = json::array();
  for (const EncodedColumn& column : columns_) {
    json c = {{"name", column.name},
              {"kind", column.kind == EncodedColumn::Kind::Numeric ? "numeric" : "categorical"},
              {"impute", column.impute},
              {"indicator", column.indicator},
              {"missing_in_training", column.missing_in_training}};
    if (column.inferred) c["inferred"] = true;
    if (column.kind == EncodedColumn::Kind::Categorical) {
      c["categories"] = column.categories;
      if (column.impute != "none") c["fill"] = column.fill_category;
    } else if (column.impute != "none") {
      c["fill"] = column.fill_number;
    }
    columns.push_back(std::move(c));
  }
  json out = {{"target", target_},
              {"task", classification_ ? "classification" : "regression"},
              {"columns", std::move(columns)},
              {"missing_values", missing_values_},
              {"unknown_category", unknown_category_},
              {"delimiter", CsvDialect::delimiter_name(delimiter_)}};
  if (classification_) {
    out["classes"] = classes_;
    out["integer_labels"] = integer_labels_;
    out["names_given"] = names_given_;
  }
  return out;
}

TableEncoding TableEncoding::from_json(const json& in) {
  const std::string root = "encoding";
  if (!in.is_object()) bad(root, fmt::format("expected an object, got {}", in.type_name()));
  TableEncoding e;
  e.target_ = string_member(in, "target", root);
  const std::string task = string_member(in, "task", root);
  if (task != "classification" && task != "regression")
    bad(root + ".task",
        fmt::format("\"{}\"; expected classification or regression", shown_cell(task)));
  e.classification_ = task == "classification";
  e.missing_values_ = strings_member(in, "missing_values", root, false);
  e.unknown_category_ = string_member(in, "unknown_category", root);
  if (e.unknown_category_ != "ignore" && e.unknown_category_ != "error")
    bad(root + ".unknown_category",
        fmt::format("\"{}\"; expected ignore or error", shown_cell(e.unknown_category_)));
  try {
    e.delimiter_ = CsvDialect::delimiter_from_name(string_member(in, "delimiter", root));
  } catch (const Error& error) {
    bad(root + ".delimiter", error.what());
  }
  if (e.classification_) {
    e.classes_ = strings_member(in, "classes", root, false);
    if (e.classes_.size() < 2) bad(root + ".classes", "a classifier needs two or more classes");
    const std::set<std::string> distinct(e.classes_.begin(), e.classes_.end());
    if (distinct.size() != e.classes_.size()) bad(root + ".classes", "a class name appears twice");
    e.integer_labels_ = bool_member(in, "integer_labels", root, false);
    e.names_given_ = bool_member(in, "names_given", root, false);
  }
  const json& columns = member(in, "columns", root);
  if (!columns.is_array() || columns.empty())
    bad(root + ".columns", "expected a non-empty array of columns");
  std::set<std::string> names;
  for (std::size_t i = 0; i < columns.size(); ++i) {
    const std::string field = fmt::format("{}.columns[{}]", root, i);
    const json& c = columns[i];
    if (!c.is_object()) bad(field, fmt::format("expected an object, got {}", c.type_name()));
    EncodedColumn column;
    column.name = string_member(c, "name", field);
    if (!names.insert(column.name).second)
      bad(field + ".name", fmt::format("'{}' appears twice", shown_cell(column.name)));
    if (column.name == e.target_) bad(field + ".name", "the target is not a feature column");
    const std::string kind = string_member(c, "kind", field);
    if (kind != "numeric" && kind != "categorical")
      bad(field + ".kind",
          fmt::format("\"{}\"; expected numeric or categorical", shown_cell(kind)));
    column.kind =
        kind == "numeric" ? EncodedColumn::Kind::Numeric : EncodedColumn::Kind::Categorical;
    column.inferred = bool_member(c, "inferred", field, false);
    column.indicator = bool_member(c, "indicator", field, false);
    column.impute = string_member(c, "impute", field);
    if (!contains({std::begin(kImputeMethods), std::end(kImputeMethods)}, column.impute))
      bad(field + ".impute", fmt::format("\"{}\"; expected one of {}", shown_cell(column.impute),
                                         fmt::join(kImputeMethods, ", ")));
    if (const auto m = c.find("missing_in_training"); m != c.end()) {
      if (!m->is_number_integer() || m->get<std::int64_t>() < 0)
        bad(field + ".missing_in_training", "expected a count");
      column.missing_in_training = m->get<std::int64_t>();
    }
    const bool categorical = column.kind == EncodedColumn::Kind::Categorical;
    if (categorical) {
      column.categories = strings_member(c, "categories", field, true);
      if (column.categories.empty()) bad(field + ".categories", "no categories");
    }
    if (column.impute != "none") {
      const json& fill = member(c, "fill", field);
      if (categorical) {
        if (!fill.is_string()) bad(field + ".fill", "expected a category (a string)");
        column.fill_category = fill.get<std::string>();
        // A constant fill is a category only where training had missing cells to fill.
        const bool fill_is_category =
            column.impute == "most_frequent" || column.missing_in_training > 0;
        if (fill_is_category && !std::binary_search(column.categories.begin(),
                                                    column.categories.end(), column.fill_category))
          bad(field + ".fill", fmt::format("'{}' is not one of the column's categories",
                                           shown_cell(column.fill_category)));
      } else {
        if (!fill.is_number() || !std::isfinite(fill.get<double>()) ||
            std::abs(fill.get<double>()) > std::numeric_limits<float>::max())
          bad(field + ".fill", "expected a finite float32 number");
        column.fill_number = fill.get<double>();
      }
      if (categorical && (column.impute == "mean" || column.impute == "median"))
        bad(field + ".impute", "mean and median are for numeric columns");
    }
    e.width_ += column.width();  // summed as it goes: finish() for each column was quadratic
    e.columns_.push_back(std::move(column));
    if (e.width_ > kMaxFeatures)
      bad(root + ".columns", fmt::format("more than {} features", kMaxFeatures));
  }
  return e;
}

}  // namespace lathe
