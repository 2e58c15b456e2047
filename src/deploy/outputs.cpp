// Predictions: the forward pass in batches, and the results as CSV or JSON text.
#include <cmath>
#include <cstring>
#include <iterator>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/ops.h"
#include "lathe/predict_io.h"

namespace lathe {
namespace {

// A CSV cell, quoted (RFC 4180) when it holds a comma, quote, line break or edge spaces.
std::string csv_cell(const std::string& text) {
  const bool quote = text.find_first_of(",\"\r\n") != std::string::npos ||
                     (!text.empty() && (text.front() == ' ' || text.back() == ' ' ||
                                        text.front() == '\t' || text.back() == '\t'));
  if (!quote) return text;
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + '"';
}

std::string json_string(const std::string& text) {
  // dump() escapes; replace, not throw, on invalid UTF-8 (file names need not be UTF-8).
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The shortest text that reads back as the same float32.
void append_float_text(std::string& out, float value, bool json) {
  if (json && !std::isfinite(value))
    out += "null";
  else
    fmt::format_to(std::back_inserter(out), "{}", value);
}

}  // namespace

Tensor predict_in_batches(const Predictor& predictor, const Tensor& inputs,
                          std::int64_t batch_size) {
  if (batch_size <= 0)
    throw Error(fmt::format("predict: batch size must be positive, got {}", batch_size));
  if (inputs.dim() < 1 || inputs.size(0) == 0) throw Error("predict: no examples to predict");
  const std::int64_t count = inputs.size(0);
  Tensor result;
  for (std::int64_t start = 0; start < count; start += batch_size) {
    const std::int64_t end = std::min(count, start + batch_size);
    const Tensor batch = start == 0 && end == count ? inputs : slice(inputs, 0, start, end);
    Tensor out = predictor.predict(batch);
    if (out.dtype() != DType::Float32) out = out.to(DType::Float32);
    const std::int64_t columns = out.numel() / (end - start);
    if (!result.defined()) result = Tensor::empty({count, columns});
    std::memcpy(result.data<float>() + start * columns, out.data<float>(),
                static_cast<std::size_t>(out.numel()) * sizeof(float));
  }
  return result;
}

std::vector<std::string> output_names(const Predictor& predictor, std::int64_t outputs) {
  const nlohmann::json& task = predictor.info().task;
  const std::string target = task.contains("target") && task["target"].is_string()
                                 ? task["target"].get<std::string>()
                                 : "";
  if (outputs == 1) return {target.empty() ? "value" : target};
  std::vector<std::string> names;
  for (std::int64_t i = 0; i < outputs; ++i)
    names.push_back(fmt::format("{}_{}", target.empty() ? "value" : target, i));
  return names;
}

std::string format_predictions(const Predictor& predictor, const std::vector<std::string>& sources,
                               const Tensor& outputs, OutputFormat format) {
  const auto rows = static_cast<std::int64_t>(sources.size());
  if (rows == 0 || outputs.numel() % rows != 0)
    throw Error(
        fmt::format("format_predictions: {} outputs for {} sources", outputs.numel(), rows));
  const std::int64_t columns = outputs.numel() / rows;
  const Tensor values = outputs.dtype() == DType::Float32 ? outputs : outputs.to(DType::Float32);
  const float* data = values.data<float>();
  const bool classification = predictor.kind() == PredictionKind::Classification;
  const std::vector<std::string> names =
      classification ? predictor.class_names() : output_names(predictor, columns);
  if (static_cast<std::int64_t>(names.size()) != columns)
    throw Error(
        fmt::format("format_predictions: {} output columns for {} names", columns, names.size()));
  const std::vector<std::int64_t> best =
      classification ? argmax_rows(reshape(values, {rows, columns})) : std::vector<std::int64_t>{};

  std::string out;
  out.reserve(static_cast<std::size_t>(rows * (columns + 2) * 14));
  const auto appender = std::back_inserter(out);
  if (format == OutputFormat::Csv) {
    out += classification ? "source,class_index,class_name" : "source";
    for (const std::string& name : names) {
      std::string column = classification ? "p_" : "";
      column += name;
      out += ',';
      out += csv_cell(column);
    }
    out += '\n';
    for (std::int64_t r = 0; r < rows; ++r) {
      out += csv_cell(sources[r]);
      if (classification) fmt::format_to(appender, ",{},{}", best[r], csv_cell(names[best[r]]));
      for (std::int64_t c = 0; c < columns; ++c) {
        out += ',';
        append_float_text(out, data[r * columns + c], false);
      }
      out += '\n';
    }
    return out;
  }

  std::vector<std::string> json_names;
  for (const std::string& name : names) json_names.push_back(json_string(name));
  out += "[\n";
  for (std::int64_t r = 0; r < rows; ++r) {
    fmt::format_to(appender, "  {{\"source\": {}", json_string(sources[r]));
    if (classification) {
      fmt::format_to(appender, ", \"class_index\": {}, \"class_name\": {}, \"probabilities\": {{",
                     best[r], json_names[best[r]]);
    } else if (columns == 1) {
      out += ", \"value\": ";
      append_float_text(out, data[r], true);
    } else {
      out += ", \"values\": {";
    }
    if (classification || columns != 1) {
      for (std::int64_t c = 0; c < columns; ++c) {
        fmt::format_to(appender, "{}{}: ", c == 0 ? "" : ", ", json_names[c]);
        append_float_text(out, data[r * columns + c], true);
      }
      out += '}';
    }
    out += r + 1 == rows ? "}\n" : "},\n";
  }
  out += "]\n";
  return out;
}

}  // namespace lathe
