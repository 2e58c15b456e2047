#pragma once
// What `lathe board` knows of a folder of runs: the runs found under it, each run's files read
// as they grow, and the answers of the board's JSON endpoints. Only this part touches the files;
// it never writes, and reads nothing outside the folder.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lathe::board {

// Enough of a file's identity to see that it changed.
struct FileStamp {
  std::uintmax_t size = 0;
  std::int64_t modified = 0;  // nanoseconds
  std::uintmax_t inode = 0;
  bool exists = false;
  bool operator==(const FileStamp&) const = default;
};

// A JSON-lines file read as it grows, into columns of numbers (NaN where a line lacks a value).
// Only lines after those already read are parsed; a file whose first line changed, or that got
// shorter, is read afresh and its generation goes up (a new run in the same folder). A last
// line without its newline is not read until it has one (a writer mid-line). A complete line
// that is not a JSON object with a numeric "step" is skipped and counted.
class JsonLinesFile {
 public:
  // Fills one row (column order) from a parsed line; false: the line is malformed.
  using Extractor = std::function<bool(const nlohmann::json& line, std::vector<double>& row)>;
  // Columns named in `exact` are sent with every digit (steps, times); the others with 7
  // significant digits, which is all a chart or a table shows and halves what the page parses.
  JsonLinesFile(std::vector<std::string> columns, Extractor extract,
                std::vector<std::string> exact = {});

  // Reads what is new in `path` (absent: no points). True when anything changed.
  bool refresh(const std::filesystem::path& path);

  std::int64_t generation() const { return generation_; }
  std::int64_t points() const { return points_; }
  std::int64_t skipped() const { return skipped_; }
  const std::vector<std::int64_t>& skipped_lines() const { return skipped_lines_; }  // 1-based
  bool incomplete_tail() const { return incomplete_tail_; }
  const std::vector<std::string>& column_names() const { return names_; }
  const std::vector<double>& column(std::size_t index) const { return columns_[index]; }
  // {"generation": G, "from": F, "points": N, "columns": {name: [values from F on]}}; `from` is
  // 0 when the caller's generation is not the current one. A column with no value from F on is
  // null rather than a list of nulls.
  void write_json(std::string& out, std::int64_t from, std::int64_t generation) const;
  // Formats the whole file's answer ahead (kept until the file changes), so that a page opened
  // on many long runs does not wait for it.
  void prepare_json() const;

 private:
  void reset();
  std::vector<std::string> names_;
  std::vector<bool> exact_;
  Extractor extract_;
  std::vector<std::vector<double>> columns_;
  FileStamp stamp_;
  std::string first_line_;
  std::uintmax_t consumed_ = 0;  // bytes of complete lines read
  std::int64_t lines_ = 0, points_ = 0, skipped_ = 0, generation_ = 0;
  std::vector<std::int64_t> skipped_lines_;
  bool incomplete_tail_ = false;
  mutable std::string whole_json_;  // the answer from point 0, for whole_json_points_ points
  mutable std::int64_t whole_json_points_ = -1, whole_json_generation_ = -1;
};

// One run folder: metrics.jsonl (evaluations), train_log.jsonl (training loss every log_every
// steps), status.json, config.json, samples.jsonl and the bundle's metrics.
struct Run {
  Run();
  std::string name;  // the folder, relative to the runs folder, '/'-separated
  std::filesystem::path dir;
  JsonLinesFile metrics, log;
  FileStamp status_stamp, config_stamp, bundle_stamp, samples_stamp;
  nlohmann::json status = nlohmann::json::object();
  bool status_unreadable = false;                    // status.json is there but not a JSON object
  nlohmann::json config = nlohmann::json::object();  // flattened: "optimizer.lr": 0.001
  nlohmann::json bundle = nullptr;                   // the bundle's lathe.metrics, when readable
  nlohmann::json sample = nullptr;                   // the last line of samples.jsonl
};

// The nested objects and lists of a config as one level of "a.b.0.c" keys (the --set syntax).
nlohmann::json flatten_config(const nlohmann::json& config);

// The TensorBoard smoothing the page applies, here for the tests: a debiased exponential moving
// average with weight `weight` in [0, 1), over the finite values (others pass through).
std::vector<double> debiased_ema(const std::vector<double>& values, double weight);

class RunsFolder {
 public:
  // Throws lathe::Error when `root` is not a readable folder.
  explicit RunsFolder(const std::filesystem::path& root);

  // Looks for runs again and reads what changed. Returns the number of runs.
  std::size_t refresh();
  // Formats every run's points ahead (JsonLinesFile::prepare_json).
  void prepare_answers();
  // GET /api/runs: every run's status, summary and file generations.
  std::string list_json();
  // GET /api/data: a run's new points; nullopt when `name` is not a run of this folder (404):
  // empty, absolute, with "." or ".." parts, a symlink or anything not found by the scan.
  std::optional<std::string> data_json(const std::string& name, std::int64_t metrics_from,
                                       std::int64_t metrics_generation, std::int64_t log_from,
                                       std::int64_t log_generation);
  const std::filesystem::path& root() const { return root_; }

  // A run folder's name as a request may give it: relative, '/'-separated, no empty, "." or ".."
  // part.
  static bool plausible_run_name(const std::string& name);

 private:
  void refresh_run(Run& run);
  // The file if it is inside the runs folder once symlinks are resolved; nullopt otherwise.
  std::optional<std::filesystem::path> inside(const std::filesystem::path& path) const;
  nlohmann::json summary(const Run& run) const;

  std::filesystem::path given_;  // as the user named it, for the bundle paths shown
  std::filesystem::path root_;   // canonical
  std::string host_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Run>> runs_;
  bool scan_truncated_ = false;
};

}  // namespace lathe::board
