// The runs under a folder as the board sees them: found by a scan that never follows a
// directory symlink, each file read as it grows, nothing read from outside the folder.
#include "src/board/runs.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>

#include "lathe/error.h"

namespace lathe::board {
namespace fs = std::filesystem;

namespace {

constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kMaxRuns = 5000;
constexpr std::size_t kMaxScannedEntries = 200000;
constexpr int kMaxDepth = 32;
constexpr std::size_t kMaxSkippedLinesListed = 20;
constexpr std::uintmax_t kMaxSmallFile = 16u << 20;  // status.json, config.json

// JSON from a run file, or a discarded value when it is not JSON, or nests deeper than any file
// lathe writes (a hostile line cannot make the parser's DOM exhaust the stack).
nlohmann::json parse_json(std::string_view text, std::size_t max_depth = 64) {
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped)
        escaped = false;
      else if (c == '\\')
        escaped = true;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return nlohmann::json(nlohmann::json::value_t::discarded);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return nlohmann::json::parse(text, nullptr, false);
}

double now_unix() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

FileStamp stamp_of(const fs::path& path) {
  FileStamp stamp;
  struct stat info {};
  if (::stat(path.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return stamp;
  stamp.exists = true;
  stamp.size = static_cast<std::uintmax_t>(info.st_size);
  stamp.modified =
      static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1000000000 + info.st_mtim.tv_nsec;
  stamp.inode = info.st_ino;
  return stamp;
}

std::string text(const nlohmann::json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : std::string();
}

double number(const nlohmann::json& object, const char* key) {
  const auto found = object.find(key);
  return found != object.end() && found->is_number() ? found->get<double>() : kMissing;
}

bool metrics_row(const nlohmann::json& line, std::vector<double>& row) {
  if (!line.is_object() || !line.contains("step") || !line["step"].is_number()) return false;
  const auto validation = line.find("validation");
  const nlohmann::json empty = nlohmann::json::object();
  const nlohmann::json& v =
      validation != line.end() && validation->is_object() ? *validation : empty;
  double throughput = number(line, "examples_per_second");
  if (std::isnan(throughput)) throughput = number(line, "tokens_per_second");
  row = {number(line, "step"),
         number(line, "epoch"),
         number(line, "time"),
         number(line, "seconds"),
         number(line, "train_loss"),
         number(v, "loss"),
         number(v, "accuracy"),
         number(v, "rmse"),
         number(v, "r2"),
         number(line, "learning_rate"),
         throughput};
  return true;
}
enum MetricsColumn {
  kStep,
  kEpoch,
  kTime,
  kSeconds,
  kTrainLoss,
  kValLoss,
  kValAccuracy,
  kValRmse,
  kValR2,
  kLearningRate,
  kThroughput
};

bool log_row(const nlohmann::json& line, std::vector<double>& row) {
  if (!line.is_object() || !line.contains("step") || !line["step"].is_number()) return false;
  row = {number(line, "step"), number(line, "epoch"), number(line, "time"), number(line, "loss"),
         number(line, "learning_rate")};
  return true;
}

// A small JSON file (status.json, config.json): null when absent, unreadable or not JSON.
nlohmann::json read_small_json(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return nullptr;
  std::string text(kMaxSmallFile, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(file.gcount()));
  return parse_json(text);
}

// The last complete line of a JSON-lines file that parses (samples.jsonl).
nlohmann::json read_last_line(const fs::path& path, std::uintmax_t size) {
  std::ifstream file(path, std::ios::binary);
  if (!file) return nullptr;
  const std::uintmax_t tail = std::min<std::uintmax_t>(size, 1u << 20);
  file.seekg(static_cast<std::streamoff>(size - tail));
  std::string text(tail, '\0');
  file.read(text.data(), static_cast<std::streamsize>(tail));
  text.resize(static_cast<std::size_t>(file.gcount()));
  std::size_t end = text.rfind('\n');
  while (end != std::string::npos && end > 0) {
    const std::size_t begin = text.rfind('\n', end - 1);
    const std::size_t start = begin == std::string::npos ? 0 : begin + 1;
    nlohmann::json line = parse_json(std::string_view(text).substr(start, end - start));
    if (line.is_object()) return line;
    if (begin == std::string::npos) break;
    end = begin;
  }
  return nullptr;
}

// The `lathe.metrics` of a bundle, from its safetensors header alone (not the weights).
nlohmann::json read_bundle_metrics(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::array<unsigned char, 8> size_bytes{};
  if (!file.read(reinterpret_cast<char*>(size_bytes.data()), 8)) return nullptr;
  std::uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = header_size << 8 | size_bytes[i];
  if (header_size == 0 || header_size > (100u << 20)) return nullptr;
  std::string header(header_size, '\0');
  if (!file.read(header.data(), static_cast<std::streamsize>(header_size))) return nullptr;
  const nlohmann::json parsed = parse_json(header);
  if (!parsed.is_object() || !parsed.contains("__metadata__")) return nullptr;
  const nlohmann::json& metadata = parsed["__metadata__"];
  if (!metadata.is_object() || !metadata.contains("lathe.metrics") ||
      !metadata["lathe.metrics"].is_string())
    return nullptr;
  nlohmann::json metrics = parse_json(metadata["lathe.metrics"].get<std::string>());
  return metrics.is_object() ? metrics : nullptr;
}

void flatten_into(const nlohmann::json& value, const std::string& prefix, nlohmann::json& out) {
  if ((value.is_object() || value.is_array()) && !value.empty()) {
    if (value.is_object()) {
      for (const auto& [key, item] : value.items())
        flatten_into(item, prefix.empty() ? key : prefix + "." + key, out);
    } else {
      for (std::size_t i = 0; i < value.size(); ++i)
        flatten_into(value[i], prefix.empty() ? std::to_string(i) : fmt::format("{}.{}", prefix, i),
                     out);
    }
    return;
  }
  out[prefix] = value;
}

std::string hostname() {
  std::array<char, 256> host{};
  ::gethostname(host.data(), host.size() - 1);
  return host.data();
}

}  // namespace

JsonLinesFile::JsonLinesFile(std::vector<std::string> columns, Extractor extract,
                             std::vector<std::string> exact)
    : names_(std::move(columns)),
      exact_(names_.size()),
      extract_(std::move(extract)),
      columns_(names_.size()) {
  for (std::size_t c = 0; c < names_.size(); ++c)
    exact_[c] = std::find(exact.begin(), exact.end(), names_[c]) != exact.end();
}

void JsonLinesFile::reset() {
  for (auto& column : columns_) column.clear();
  first_line_.clear();
  consumed_ = 0;
  lines_ = points_ = skipped_ = 0;
  skipped_lines_.clear();
  incomplete_tail_ = false;
  ++generation_;
}

bool JsonLinesFile::refresh(const fs::path& path) {
  const FileStamp stamp = stamp_of(path);
  if (stamp == stamp_) return false;
  stamp_ = stamp;
  if (!stamp.exists) {
    const bool had = consumed_ > 0 || incomplete_tail_;
    if (had) reset();
    return had;
  }
  std::ifstream file(path, std::ios::binary);
  if (!file) return false;
  // A file that got shorter, or begins otherwise, is another file: read it afresh.
  bool fresh = stamp.size < consumed_;
  if (!fresh && consumed_ > 0) {
    std::string first(first_line_.size() + 1, '\0');
    file.read(first.data(), static_cast<std::streamsize>(first.size()));
    fresh = first != first_line_ + "\n";
  }
  if (fresh) reset();
  file.clear();
  file.seekg(static_cast<std::streamoff>(consumed_));
  std::string text(stamp.size - consumed_, '\0');
  file.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(file.gcount()));
  const std::size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  incomplete_tail_ = complete < text.size();
  std::vector<double> row;
  for (std::size_t begin = 0; begin < complete;) {
    const std::size_t end = text.find('\n', begin);
    const std::string_view line(text.data() + begin, end - begin);
    if (lines_ == 0) first_line_ = std::string(line);
    ++lines_;
    const nlohmann::json parsed = parse_json(line);
    if (!parsed.is_discarded() && extract_(parsed, row) && row.size() == columns_.size()) {
      for (std::size_t c = 0; c < row.size(); ++c) columns_[c].push_back(row[c]);
      ++points_;
    } else if (!line.empty()) {
      ++skipped_;
      if (skipped_lines_.size() < kMaxSkippedLinesListed) skipped_lines_.push_back(lines_);
    }
    begin = end + 1;
  }
  consumed_ += complete;
  return true;
}

void JsonLinesFile::prepare_json() const {
  if (whole_json_points_ == points_ && whole_json_generation_ == generation_) return;
  whole_json_.clear();
  whole_json_points_ = -1;
  write_json(whole_json_, 0, generation_);
  whole_json_points_ = points_;
  whole_json_generation_ = generation_;
}

void JsonLinesFile::write_json(std::string& out, std::int64_t from, std::int64_t generation) const {
  if (generation != generation_ || from < 0 || from > points_) from = 0;
  if (from == 0 && whole_json_points_ == points_ && whole_json_generation_ == generation_) {
    out += whole_json_;
    return;
  }
  fmt::format_to(std::back_inserter(out), R"({{"generation":{},"from":{},"points":{},"columns":{{)",
                 generation_, from, points_);
  for (std::size_t c = 0; c < names_.size(); ++c) {
    fmt::format_to(std::back_inserter(out), R"({}"{}":)", c ? "," : "", names_[c]);
    const std::vector<double>& column = columns_[c];
    const auto begin = column.begin() + from;
    if (std::none_of(begin, column.end(), [](double v) { return std::isfinite(v); })) {
      out += "null";
      continue;
    }
    out += '[';
    for (auto value = begin; value != column.end(); ++value) {
      if (value != begin) out += ',';
      if (!std::isfinite(*value))
        out += "null";
      else if (exact_[c])
        fmt::format_to(std::back_inserter(out), "{}", *value);
      else
        fmt::format_to(std::back_inserter(out), "{:.7g}", *value);
    }
    out += ']';
  }
  out += "}}";
}

Run::Run()
    : metrics({"step", "epoch", "time", "seconds", "train_loss", "val_loss", "val_accuracy",
               "val_rmse", "val_r2", "learning_rate", "throughput"},
              metrics_row, {"step", "epoch", "time", "seconds"}),
      log({"step", "epoch", "time", "loss", "learning_rate"}, log_row, {"step", "epoch", "time"}) {}

nlohmann::json flatten_config(const nlohmann::json& config) {
  nlohmann::json out = nlohmann::json::object();
  if (config.is_object()) flatten_into(config, "", out);
  return out;
}

std::vector<double> debiased_ema(const std::vector<double>& values, double weight) {
  std::vector<double> out(values.size());
  double last = 0;
  std::int64_t accumulated = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (!std::isfinite(values[i])) {
      out[i] = values[i];
      continue;
    }
    last = last * weight + (1 - weight) * values[i];
    ++accumulated;
    const double debias = weight == 1 ? 1 : 1 - std::pow(weight, static_cast<double>(accumulated));
    out[i] = last / debias;
  }
  return out;
}

RunsFolder::RunsFolder(const fs::path& root) : given_(root), host_(hostname()) {
  std::error_code error;
  const fs::file_status status = fs::status(root, error);
  if (!fs::exists(status))
    throw Error(fmt::format("board: the runs folder {} does not exist", root.string()));
  if (!fs::is_directory(status))
    throw Error(fmt::format("board: {} is not a folder; give the folder that holds the runs",
                            root.string()));
  root_ = fs::canonical(root, error);
  if (error)
    throw Error(
        fmt::format("board: cannot read the runs folder {}: {}", root.string(), error.message()));
}

bool RunsFolder::plausible_run_name(const std::string& name) {
  if (name == ".") return true;  // the runs folder is itself a run
  if (name.empty() || name.front() == '/' || name.find('\0') != std::string::npos) return false;
  std::size_t begin = 0;
  for (;;) {
    const std::size_t end = name.find('/', begin);
    const std::string part = name.substr(begin, end == std::string::npos ? end : end - begin);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string::npos) return true;
    begin = end + 1;
  }
}

std::optional<fs::path> RunsFolder::inside(const fs::path& path) const {
  std::error_code error;
  const fs::path resolved = fs::canonical(path, error);
  if (error) return std::nullopt;
  const fs::path relative = resolved.lexically_relative(root_);
  if (relative.empty() || *relative.begin() == "..") return std::nullopt;
  return resolved;
}

std::size_t RunsFolder::refresh() {
  std::lock_guard lock(mutex_);
  const auto is_run = [](const fs::path& dir) {
    std::error_code error;
    return fs::exists(dir / "metrics.jsonl", error) || fs::exists(dir / "status.json", error);
  };
  std::map<std::string, fs::path> found;
  if (is_run(root_)) found.emplace(".", root_);
  std::error_code error;
  fs::recursive_directory_iterator it(root_, fs::directory_options::skip_permission_denied, error);
  std::size_t visited = 0;
  scan_truncated_ = false;
  for (; !error && it != fs::recursive_directory_iterator(); it.increment(error)) {
    if (++visited > kMaxScannedEntries || found.size() >= kMaxRuns) {
      scan_truncated_ = true;
      break;
    }
    const fs::directory_entry& entry = *it;
    std::error_code entry_error;
    // Never into a symlinked folder (the iterator does not follow them either) or a hidden one.
    if (entry.is_symlink(entry_error) || !entry.is_directory(entry_error)) continue;
    if (entry.path().filename().string().starts_with(".") || it.depth() >= kMaxDepth) {
      it.disable_recursion_pending();
      continue;
    }
    if (is_run(entry.path()))
      found.emplace(entry.path().lexically_relative(root_).generic_string(), entry.path());
  }
  for (auto run = runs_.begin(); run != runs_.end();)
    run = found.count(run->first) ? std::next(run) : runs_.erase(run);
  for (const auto& [name, dir] : found) {
    auto& run = runs_[name];
    if (!run) {
      run = std::make_unique<Run>();
      run->name = name;
      run->dir = dir;
    }
    refresh_run(*run);
  }
  return runs_.size();
}

void RunsFolder::refresh_run(Run& run) {
  // A file whose real place is outside the folder (a symlink out) is treated as absent.
  const auto file = [&](const char* name) {
    return inside(run.dir / name).value_or(fs::path("/nonexistent/lathe-board"));
  };
  run.metrics.refresh(file("metrics.jsonl"));
  run.log.refresh(file("train_log.jsonl"));
  const fs::path status_path = file("status.json");
  if (const FileStamp stamp = stamp_of(status_path); stamp != run.status_stamp) {
    run.status_stamp = stamp;
    nlohmann::json status = read_small_json(status_path);
    // A file caught between writes is read again next time rather than forgotten.
    run.status_unreadable = stamp.exists && !status.is_object();
    if (status.is_object() || !stamp.exists)
      run.status = status.is_object() ? status : nlohmann::json::object();
    else
      run.status_stamp = {};
  }
  const fs::path config_path = file("config.json");
  if (const FileStamp stamp = stamp_of(config_path); stamp != run.config_stamp) {
    run.config_stamp = stamp;
    run.config = flatten_config(read_small_json(config_path));
  }
  const fs::path bundle_path = file("model.safetensors");
  if (const FileStamp stamp = stamp_of(bundle_path); stamp != run.bundle_stamp) {
    run.bundle_stamp = stamp;
    run.bundle = stamp.exists ? read_bundle_metrics(bundle_path) : nullptr;
  }
  const fs::path samples_path = file("samples.jsonl");
  if (const FileStamp stamp = stamp_of(samples_path); stamp != run.samples_stamp) {
    run.samples_stamp = stamp;
    run.sample = stamp.exists ? read_last_line(samples_path, stamp.size) : nullptr;
  }
}

void RunsFolder::prepare_answers() {
  std::lock_guard lock(mutex_);
  for (const auto& [name, run] : runs_) {
    run->metrics.prepare_json();
    run->log.prepare_json();
  }
}

nlohmann::json RunsFolder::summary(const Run& run) const {
  const JsonLinesFile& m = run.metrics;
  const auto config = [&](const char* key) {
    return run.config.contains(key) ? run.config[key] : nlohmann::json();
  };
  const auto has_values = [&](int column) {
    for (const double v : m.column(column))
      if (std::isfinite(v)) return true;
    return false;
  };
  std::string task = "classification";
  if (config("data.format") == "text")
    task = "language_model";
  else if (config("loss.type") == "mse" || has_values(kValRmse))
    task = "regression";
  nlohmann::json out = {{"name", run.name}, {"task", task}};
  const nlohmann::json iterations = config("trainer.iterations");
  out["by_iterations"] = iterations.is_number() && iterations.get<double>() > 0;

  // Status: what status.json says, unless the process it names on this host is gone. The file
  // is read as untrusted: a field of the wrong type counts as absent.
  std::string status = text(run.status, "status");
  nlohmann::json message = run.status.contains("message") ? run.status["message"] : nullptr;
  if (status == "running" && text(run.status, "host") == host_) {
    const auto pid = run.status.find("pid");
    const bool valid = pid != run.status.end() && pid->is_number_integer() &&
                       pid->get<std::int64_t>() > 0 &&
                       pid->get<std::int64_t>() <= std::numeric_limits<pid_t>::max();
    if (!valid) {
      status = "unknown";
      message = "status.json says running but names no process id it could be";
    } else if (::kill(static_cast<pid_t>(pid->get<std::int64_t>()), 0) != 0 && errno == ESRCH) {
      status = "stopped";
      message = fmt::format("the training process ({}) ended without saying how (killed?)",
                            pid->get<std::int64_t>());
    }
  }
  if (status.empty()) status = run.bundle_stamp.exists ? "finished" : "unknown";
  if (status == "unknown" && message.is_null() && run.status_unreadable)
    message = "status.json is not a JSON object (damaged, or caught while being written)";
  out["status"] = status;
  out["message"] = message;
  for (const char* key : {"pid", "host", "started", "finished"})
    out[key] = run.status.contains(key) ? run.status[key] : nullptr;

  // Duration: from the status file, else from the records.
  const double started = number(run.status, "started"), finished = number(run.status, "finished");
  nlohmann::json duration = nullptr;
  if (std::isfinite(started))
    duration = (std::isfinite(finished) ? finished
                : status == "running"   ? now_unix()
                                        : kMissing) -
               started;
  if (duration.is_number() &&
      (!std::isfinite(duration.get<double>()) || duration.get<double>() < 0))
    duration = nullptr;
  if (duration.is_null() && m.points() > 0) {
    const double first = m.column(kTime).front() - m.column(kSeconds).front();
    const double last = m.column(kTime).back();
    if (std::isfinite(first) && std::isfinite(last)) duration = last - first;
  }
  out["duration"] = duration;
  // When the run began, for the wall-time axis.
  double origin = started;
  if (!std::isfinite(origin) && m.points() > 0)
    origin = m.column(kTime).front() - m.column(kSeconds).front();
  if (!std::isfinite(origin) && run.log.points() > 0) origin = run.log.column(2).front();
  out["origin"] = std::isfinite(origin) ? nlohmann::json(origin) : nlohmann::json();

  // Best validation figure: accuracy (highest) for a classifier, RMSE (lowest) for regression,
  // loss (lowest) for a language model.
  const int column = task == "classification" ? kValAccuracy
                     : task == "regression"   ? kValRmse
                                              : kValLoss;
  const bool highest = column == kValAccuracy;
  std::int64_t best = -1;
  for (std::int64_t i = 0; i < m.points(); ++i) {
    const double v = m.column(column)[i];
    if (std::isfinite(v) &&
        (best < 0 || (highest ? v > m.column(column)[best] : v < m.column(column)[best])))
      best = i;
  }
  out["best"] = nullptr;
  if (best >= 0)
    out["best"] = {{"metric", column == kValAccuracy ? "accuracy"
                              : column == kValRmse   ? "rmse"
                                                     : "loss"},
                   {"value", m.column(column)[best]},
                   {"epoch", m.column(kEpoch)[best]},
                   {"step", m.column(kStep)[best]}};
  out["points"] = m.points();
  // The final test figures, as the bundle records them.
  out["test"] = nullptr;
  if (run.bundle.is_object()) {
    if (run.bundle.contains("test"))
      out["test"] = run.bundle["test"];
    else if (run.bundle.contains("validation_loss"))
      out["test"] = {{"validation_loss", run.bundle["validation_loss"]}};
  }
  // The bundle as a path from where the board was started (the runs folder as it was named).
  const fs::path bundle = (run.name == "." ? given_ : given_ / run.name) / "model.safetensors";
  out["bundle"] = run.bundle_stamp.exists ? nlohmann::json(bundle.lexically_normal().string())
                                          : nlohmann::json();
  out["sample"] = run.sample;
  out["config"] = run.config;
  for (const auto& [name, file] :
       {std::pair<const char*, const JsonLinesFile*>{"metrics", &m}, {"log", &run.log}})
    out[name] = {{"generation", file->generation()},
                 {"points", file->points()},
                 {"skipped", file->skipped()},
                 {"skipped_lines", file->skipped_lines()},
                 {"incomplete", file->incomplete_tail()}};
  return out;
}

std::string RunsFolder::list_json() {
  std::lock_guard lock(mutex_);
  nlohmann::json runs = nlohmann::json::array();
  for (const auto& [name, run] : runs_) runs.push_back(summary(*run));
  return nlohmann::json({{"root", root_.string()},
                         {"root_name", root_.filename().string()},
                         {"scan_truncated", scan_truncated_},
                         {"now", now_unix()},
                         {"runs", std::move(runs)}})
      .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::optional<std::string> RunsFolder::data_json(const std::string& name, std::int64_t metrics_from,
                                                 std::int64_t metrics_generation,
                                                 std::int64_t log_from,
                                                 std::int64_t log_generation) {
  if (!plausible_run_name(name)) return std::nullopt;
  std::lock_guard lock(mutex_);
  const auto found = runs_.find(name);
  if (found == runs_.end() || !inside(found->second->dir)) return std::nullopt;
  Run& run = *found->second;
  refresh_run(run);
  std::string out =
      R"({"name":)" +
      nlohmann::json(run.name).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
      R"(,"metrics":)";
  run.metrics.write_json(out, metrics_from, metrics_generation);
  out += R"(,"log":)";
  run.log.write_json(out, log_from, log_generation);
  out += "}";
  return out;
}

}  // namespace lathe::board
