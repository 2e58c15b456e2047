// Prediction inputs: examples for a Predictor read from IDX, CSV, JSON and image files, each
// remembering the file (and index) it came from.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "lathe/data.h"
#include "lathe/error.h"
#include "lathe/predict_io.h"
#include "src/data/csv_support.h"
#include "src/io/file_bytes.h"
#include "src/io/untrusted_json.h"

namespace lathe {
namespace {

constexpr const char* kKnownKinds =
    ".csv (or .tsv), .json, an image (.png, .jpg, .jpeg, .bmp, .gif, .pgm, .ppm) or an IDX file "
    "(.idx, *-idx3-ubyte), each optionally .gz";

std::string lowercase(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// Examples read so far: values of consecutive examples, and their sources.
struct Collected {
  std::vector<float> values;
  std::vector<std::string> sources;
};

void add_rows(Collected& out, const std::string& name, const float* data, std::int64_t rows,
              std::int64_t features) {
  out.values.insert(out.values.end(), data, data + rows * features);
  for (std::int64_t i = 0; i < rows; ++i) out.sources.push_back(fmt::format("{}:{}", name, i));
}

void read_idx_examples(const std::filesystem::path& path, const InputSpec& spec, Collected& out) {
  const std::string name = path.string();
  const std::int64_t features = shape_numel(spec.shape);
  Tensor data = read_idx(path);
  if (data.dim() < 2)
    throw Error(fmt::format(
        "{}: IDX data of shape {} has one dimension; expected examples of shape {} (is this a "
        "labels file?)",
        name, shape_str(data.shape()), shape_str(spec.shape)));
  if (data.size(0) == 0)
    throw Error(fmt::format("{}: no examples (shape {})", name, shape_str(data.shape())));
  const Shape example(data.shape().begin() + 1, data.shape().end());
  if (shape_numel(example) != features)
    throw Error(fmt::format(
        "{}: IDX examples have shape {} ({} values); the model takes {} ({} "
        "values)",
        name, shape_str(example), shape_numel(example), shape_str(spec.shape), features));
  if (data.dtype() != DType::Float32) data = data.to(DType::Float32);
  add_rows(out, name, data.data<float>(), data.size(0), features);
}

// A "header" of numbers is the first example of a file without one, unless it counts the
// columns: pandas writes 0, 1, 2, ... over an unnamed frame's columns (and some tools 1, 2, ...).
bool header_is_data(const std::vector<std::string>& header) {
  bool from_zero = true, from_one = true;
  for (std::size_t j = 0; j < header.size(); ++j) {
    float value = 0;
    if (detail::parse_csv_number(header[j], value)) return false;  // not a number: a name
    from_zero = from_zero && header[j] == std::to_string(j);
    from_one = from_one && header[j] == std::to_string(j + 1);
  }
  return !from_zero && !from_one;
}

void read_csv_examples(const std::filesystem::path& path, const InputSpec& spec, Collected& out) {
  const std::string name = path.string();
  if (spec.encoding) {
    const RawTable table = read_csv_table(path, {spec.encoding->delimiter()});
    const Tensor features = spec.encoding->transform(table);
    add_rows(out, name, features.data<float>(), features.size(0), features.size(1));
    return;
  }
  const std::int64_t features = shape_numel(spec.shape);
  if (!spec.features.empty() && static_cast<std::int64_t>(spec.features.size()) != features)
    throw Error(fmt::format("{}: the bundle names {} features but its input shape {} has {}", name,
                            spec.features.size(), shape_str(spec.shape), features));
  const CsvTable table = read_csv_columns(path, spec.features);
  if (spec.features.empty() && header_is_data(table.feature_names)) {
    const std::vector<std::string>& first = table.feature_names;
    const std::vector<std::string> shown(first.begin(),
                                         first.begin() + std::min<std::ptrdiff_t>(3, first.size()));
    throw Error(fmt::format(
        "{}:1: the first row ({}{}) holds numbers, not column names: a CSV input starts with a "
        "header row, or its first example is lost; add one (any names: the columns are read in "
        "order)",
        name, fmt::join(shown, ", "), first.size() > 3 ? ", ..." : ""));
  }
  if (table.features.size(1) != features)
    throw Error(fmt::format(
        "{}: {} columns, but the model takes {} features; the bundle records no feature names "
        "(it was not trained on CSV data), so every column is read as a feature",
        name, table.features.size(1), features));
  add_rows(out, name, table.features.data<float>(), table.features.size(0), features);
}

nlohmann::json parse_json_file(const std::filesystem::path& path) {
  const detail::FileBytes file = detail::read_file_bytes(path);
  if (file.bytes.empty())
    throw Error(
        fmt::format("{}: empty file; expected a JSON array of "
                    "examples",
                    path.string()));
  try {
    return nlohmann::json::parse(file.bytes.begin(), file.bytes.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(fmt::format("{}: invalid JSON at byte {}: {}", path.string(), e.byte,
                            detail::json_error_text(e)));
  } catch (const nlohmann::json::exception& e) {  // a number past double's range: 1e400
    throw Error(fmt::format("{}: invalid JSON: {}", path.string(), detail::json_error_text(e)));
  }
}

// Appends one number; `where` says which (e.g. "example 3[1][4]").
void append_number(const nlohmann::json& value, const std::string& where,
                   std::vector<float>& values) {
  if (!value.is_number())
    throw Error(fmt::format("{} is {}, not a number", where, detail::shown_json(value)));
  const double number = value.get<double>();
  if (!std::isfinite(number) || std::abs(number) > std::numeric_limits<float>::max())
    throw Error(
        fmt::format("{} is {}, outside the float32 range", where, detail::shown_json(value)));
  values.push_back(static_cast<float>(number));
}

// Appends nested arrays that must have exactly the dimensions shape[depth...].
void append_nested(const nlohmann::json& value, const Shape& shape, std::size_t depth,
                   const std::string& where, std::vector<float>& values) {
  const char* const inner_kind = depth + 1 == shape.size() ? "numbers" : "arrays";
  if (!value.is_array())
    throw Error(fmt::format("{} is {}; expected an array of {} {}", where,
                            detail::shown_json(value), shape[depth], inner_kind));
  if (static_cast<std::int64_t>(value.size()) != shape[depth])
    throw Error(fmt::format("{} has {} elements; expected {} {} (input shape {})", where,
                            value.size(), shape[depth], inner_kind, shape_str(shape)));
  for (std::size_t i = 0; i < value.size(); ++i) {
    const std::string inner = fmt::format("{}[{}]", where, i);
    if (depth + 1 == shape.size())
      append_number(value[i], inner, values);
    else
      append_nested(value[i], shape, depth + 1, inner, values);
  }
}

// JSON rows of a table model: [{"column": value, ...}, ...]; values are text, numbers or null
// (missing). Every column of the encoding must be in every row; others are ignored.
void read_json_rows(const std::filesystem::path& path, const nlohmann::json& json,
                    const TableEncoding& encoding, Collected& out) {
  const std::string name = path.string();
  RawTable table;
  table.source = name;
  table.rows = static_cast<std::int64_t>(json.size());
  for (const std::string& column : encoding.column_names())
    table.columns.push_back({.name = column, .null = std::vector<std::uint8_t>(json.size(), 0)});
  for (std::size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& row = json[i];
    if (!row.is_object())
      throw Error(fmt::format(
          "{}: example {} is {}; this model takes rows as objects {{\"column\": value}} with "
          "the columns {}",
          name, i, detail::shown_json(row), fmt::join(encoding.column_names(), ", ")));
    for (RawColumn& column : table.columns) {
      const auto found = row.find(column.name);
      if (found == row.end())
        throw Error(fmt::format("{}: example {}: no column '{}'; the model takes {}", name, i,
                                column.name, fmt::join(encoding.column_names(), ", ")));
      if (found->is_string()) {
        column.text.push_back(found->get_ref<const std::string&>());
      } else if (found->is_number()) {
        column.text.push_back(found->dump());
      } else if (found->is_null()) {
        column.text.push_back("");
        column.null[i] = 1;
      } else {
        throw Error(
            fmt::format("{}: example {}: column '{}' is {}; expected text, a number or null", name,
                        i, column.name, detail::shown_json(*found)));
      }
    }
  }
  table.locate = [&](std::int64_t row, std::size_t) {
    return fmt::format("{}: example {}", name, row);
  };
  const Tensor features = encoding.transform(table);
  for (std::int64_t i = 0; i < features.size(0); ++i)
    out.sources.push_back(fmt::format("{}:{}", name, i));
  out.values.insert(out.values.end(), features.data<float>(),
                    features.data<float>() + features.numel());
}

void read_json_examples(const std::filesystem::path& path, const InputSpec& spec, Collected& out) {
  const std::string name = path.string();
  const std::int64_t features = shape_numel(spec.shape);
  const nlohmann::json json = parse_json_file(path);
  // Rows of a table model are objects; an all-numeric model also takes arrays of its numbers.
  if (spec.encoding && json.is_array() && !json.empty() &&
      (json[0].is_object() || !spec.encoding->identity()))
    return read_json_rows(path, json, *spec.encoding, out);
  if (!json.is_array())
    throw Error(fmt::format("{}: expected a JSON array of examples, got {}", name,
                            detail::shown_json(json)));
  if (json.empty()) throw Error(fmt::format("{}: the array holds no examples", name));
  if (spec.shape.size() > 1 && json[0].is_number())
    throw Error(fmt::format(
        "{}: expected an array of examples, each an array; got an array of numbers (wrap one "
        "example in [ ])",
        name));
  const std::string flat_or_nested =
      spec.shape.size() == 1
          ? fmt::format("{} numbers", features)
          : fmt::format("{} numbers or nested arrays of shape {}", features, shape_str(spec.shape));
  for (std::size_t i = 0; i < json.size(); ++i) {
    const nlohmann::json& example = json[i];
    const std::string where = fmt::format("example {}", i);
    try {
      if (!example.is_array())
        throw Error(fmt::format("{} is {}; expected an array of {}", where,
                                detail::shown_json(example), flat_or_nested));
      const bool flat = spec.shape.size() == 1 || (!example.empty() && !example[0].is_array());
      if (flat) {
        if (static_cast<std::int64_t>(example.size()) != features)
          throw Error(
              fmt::format("{} has {} values; expected {}", where, example.size(), flat_or_nested));
        for (std::size_t j = 0; j < example.size(); ++j)
          append_number(example[j], fmt::format("{}[{}]", where, j), out.values);
      } else {
        append_nested(example, spec.shape, 0, where, out.values);
      }
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", name, e.what()));
    }
    out.sources.push_back(fmt::format("{}:{}", name, i));
  }
}

}  // namespace

InputSpec InputSpec::of(const Predictor& predictor) {
  InputSpec spec{predictor.input_shape(), {}};
  const nlohmann::json& task = predictor.info().task;
  if (task.contains("features") && task["features"].is_array())
    for (const auto& feature : task["features"])
      spec.features.push_back(feature.is_string() ? feature.get<std::string>() : feature.dump());
  if (task.value("format", "") == "mnist_json") spec.pixel_scale = 1.0 / 255;
  spec.encoding = predictor.encoding();
  return spec;
}

InputKind input_kind(const std::filesystem::path& path) {
  std::string name = lowercase(path.filename().string());
  if (name.ends_with(".gz")) name.resize(name.size() - 3);
  const std::string extension = std::filesystem::path(name).extension().string();
  if (extension == ".csv" || extension == ".tsv") return InputKind::Csv;
  if (extension == ".json") return InputKind::Json;
  for (const char* image : {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".pgm", ".ppm"})
    if (extension == image) return InputKind::Image;
  if (extension == ".idx" || name.ends_with("-ubyte") || extension == ".ubyte")
    return InputKind::Idx;
  throw Error(fmt::format("{}: unknown kind of input file{}; expected {}", path.string(),
                          extension.empty() ? "" : fmt::format(" ('{}')", extension), kKnownKinds));
}

PredictionInputs read_prediction_inputs(const std::vector<std::filesystem::path>& paths,
                                        const InputSpec& spec) {
  if (paths.empty()) throw Error("predict: no input files given");
  const std::int64_t features = shape_numel(spec.shape);
  Collected collected;
  for (const auto& path : paths) {
    if (std::filesystem::is_directory(path))
      throw Error(
          fmt::format("{}: is a directory; give the files in it (e.g. DIR/*.png)", path.string()));
    switch (input_kind(path)) {
      case InputKind::Idx:
        read_idx_examples(path, spec, collected);
        break;
      case InputKind::Csv:
        read_csv_examples(path, spec, collected);
        break;
      case InputKind::Json:
        read_json_examples(path, spec, collected);
        break;
      case InputKind::Image: {
        const Tensor image = image_to_input(path, spec.shape);
        for (std::int64_t i = 0; i < image.numel(); ++i)
          collected.values.push_back(static_cast<float>(image.data<float>()[i] * spec.pixel_scale));
        collected.sources.push_back(path.string());
        break;
      }
    }
  }
  const auto count = static_cast<std::int64_t>(collected.sources.size());
  PredictionInputs result{Tensor::empty({count, features}), std::move(collected.sources)};
  std::copy(collected.values.begin(), collected.values.end(), result.inputs.data<float>());
  return result;
}

}  // namespace lathe
