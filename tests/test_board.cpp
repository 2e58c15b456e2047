// `lathe board`'s server side: run files read as they grow (malformed and half-written lines,
// rewrites), runs found at any depth, names that would leave the folder refused, the smoothing
// against its closed form, and the HTTP answers (the page, read-only, loopback Host only).
#include <gtest/gtest.h>
#include <httplib.h>

#include <cmath>
#include <fstream>
#include <map>

#include "lathe/board.h"
#include "src/board/runs.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using board::JsonLinesFile;
using board::RunsFolder;
using testing::TempDir;

JsonLinesFile steps_file() {
  return JsonLinesFile(
      {"step", "loss"},
      [](const nlohmann::json& line, std::vector<double>& row) {
        if (!line.is_object() || !line.contains("step") || !line["step"].is_number()) return false;
        row = {line["step"].get<double>(), line.value("loss", NAN)};
        return true;
      },
      {"step"});
}

void append(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

TEST(BoardFiles, ReadsOnlyWhatIsNewAndSkipsMalformedLines) {
  TempDir dir;
  const auto path = dir.path() / "metrics.jsonl";
  JsonLinesFile file = steps_file();
  EXPECT_FALSE(file.refresh(path)) << "absent: nothing";
  append(path, R"({"step":1,"loss":2.5})"
               "\n"
               R"({"step":2,"lo)");
  EXPECT_TRUE(file.refresh(path));
  EXPECT_EQ(file.points(), 1);
  EXPECT_TRUE(file.incomplete_tail()) << "a line being written waits for its newline";
  EXPECT_EQ(file.skipped(), 0);
  append(path,
         "ss\":1.5}\nnot json\n{\"no_step\":1}\n"
         R"({"step":4})"
         "\n");
  EXPECT_TRUE(file.refresh(path));
  EXPECT_EQ(file.points(), 3);
  EXPECT_FALSE(file.incomplete_tail());
  EXPECT_EQ(file.skipped(), 2);
  EXPECT_EQ(file.skipped_lines(), (std::vector<std::int64_t>{3, 4}));
  EXPECT_EQ(file.column(1)[1], 1.5);
  EXPECT_TRUE(std::isnan(file.column(1)[2]));
  EXPECT_FALSE(file.refresh(path)) << "unchanged";
  // A line nested deeper than any lathe writes is skipped unparsed.
  append(path, R"({"step":5,"x":)" + std::string(100000, '[') + std::string(100000, ']') + "}\n");
  EXPECT_TRUE(file.refresh(path));
  EXPECT_EQ(file.skipped(), 3);
  EXPECT_EQ(file.points(), 3);

  std::string json;
  file.write_json(json, 2, file.generation());
  EXPECT_EQ(json, R"({"generation":0,"from":2,"points":3,"columns":{"step":[4],"loss":null}})");
  json.clear();
  file.write_json(json, 1, file.generation());
  EXPECT_EQ(json,
            R"({"generation":0,"from":1,"points":3,"columns":{"step":[2,4],"loss":[1.5,null]}})");
  json.clear();
  file.write_json(json, 2, file.generation() - 1);
  EXPECT_NE(json.find(R"("from":0,)"), std::string::npos) << "another generation gets it all";

  // Rewritten whole with the same beginning (metrics.jsonl at each evaluation): still the same
  // file; with another beginning (a new run in the folder): read afresh.
  const std::string same = testing::read_file(path) + R"({"step":5})"
                                                      "\n";
  std::ofstream(path, std::ios::binary) << same;
  file.refresh(path);
  EXPECT_EQ(file.generation(), 0);
  EXPECT_EQ(file.points(), 4);
  std::ofstream(path, std::ios::binary) << R"({"step":7,"loss":1})"
                                           "\n";
  file.refresh(path);
  EXPECT_EQ(file.generation(), 1);
  EXPECT_EQ(file.points(), 1);
  EXPECT_EQ(file.skipped(), 0);
}

TEST(BoardFiles, SmoothingIsTensorBoardsDebiasedMovingAverage) {
  const std::vector<double> smoothed = board::debiased_ema({4, 1, NAN, 7}, 0.6);
  // Closed forms: s1 = y1; s2 = (w y1 + y2) / (1 + w); s3 over the three finite values.
  EXPECT_DOUBLE_EQ(smoothed[0], 4);
  EXPECT_DOUBLE_EQ(smoothed[1], (0.6 * 4 + 1) / 1.6);
  EXPECT_TRUE(std::isnan(smoothed[2]));
  EXPECT_DOUBLE_EQ(smoothed[3], (0.36 * 4 + 0.6 * 1 + 7) / (1 + 0.6 + 0.36));
  EXPECT_EQ(board::debiased_ema({1, 2, 3}, 0), (std::vector<double>{1, 2, 3}));
}

TEST(BoardFiles, ConfigFlattensToSetKeys) {
  const nlohmann::json flat = board::flatten_config(nlohmann::json::parse(
      R"({"optimizer":{"lr":0.1},"model":{"layers":[{"type":"linear","out":8}]},"x":[]})"));
  EXPECT_EQ(flat, nlohmann::json::parse(
                      R"({"optimizer.lr":0.1,"model.layers.0.type":"linear",
                          "model.layers.0.out":8,"x":[]})"));
}

TEST(BoardRuns, FindsRunsAtAnyDepthAndNothingOutside) {
  TempDir dir, outside;
  const auto root = dir.path() / "runs";
  std::filesystem::create_directories(root / "a");
  std::filesystem::create_directories(root / "group" / "deep" / "b");
  std::filesystem::create_directories(root / "not_a_run");
  append(root / "a" / "metrics.jsonl", R"({"step":1,"train_loss":2})"
                                       "\n");
  append(root / "group" / "deep" / "b" / "status.json", R"({"status":"running"})");
  append(outside.path() / "metrics.jsonl", R"({"step":1,"train_loss":9})"
                                           "\n");
  std::filesystem::create_directory_symlink(outside.path(), root / "linked_out");
  std::filesystem::create_directories(root / "c");
  std::filesystem::create_symlink(outside.path() / "metrics.jsonl", root / "c" / "metrics.jsonl");

  RunsFolder runs(root);
  EXPECT_EQ(runs.refresh(), 3u) << "a, group/deep/b and c; not the symlinked folder";
  const nlohmann::json listing = nlohmann::json::parse(runs.list_json());
  std::vector<std::string> names;
  for (const auto& run : listing["runs"]) names.push_back(run["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"a", "c", "group/deep/b"}));
  EXPECT_EQ(listing["runs"][0]["metrics"]["points"], 1);
  EXPECT_EQ(listing["runs"][1]["metrics"]["points"], 0) << "c's metrics.jsonl links outside";
  EXPECT_EQ(listing["runs"][2]["status"], "running");

  const auto data = [&](const std::string& name) { return runs.data_json(name, 0, 0, 0, 0); };
  ASSERT_TRUE(data("a"));
  EXPECT_NE(data("a")->find(R"("train_loss":[2])"), std::string::npos) << *data("a");
  EXPECT_TRUE(data("group/deep/b"));
  for (const std::string& name : std::vector<std::string>{
           "", "..", "../runs/a", "a/..", "a/../a", "./a", "/a", (root / "a").string(),
           "linked_out", "not_a_run", "group", std::string("a\0", 2), "a//", "a/"})
    EXPECT_FALSE(data(name)) << "'" << name << "'";
  EXPECT_FALSE(RunsFolder::plausible_run_name("a/../b"));
  EXPECT_TRUE(RunsFolder::plausible_run_name("group/deep/b"));

  EXPECT_NE(testing::error_of([&] { RunsFolder(dir.path() / "missing"); }).find("does not exist"),
            std::string::npos);
  EXPECT_NE(
      testing::error_of([&] { RunsFolder(root / "a" / "metrics.jsonl"); }).find("not a folder"),
      std::string::npos);
}

TEST(BoardRuns, StatusOfAGoneProcessIsStopped) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "r");
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  // A pid that cannot be running: above the kernel's largest.
  append(dir.path() / "r" / "status.json",
         nlohmann::json({{"status", "running"}, {"pid", 1 << 30}, {"host", host}, {"started", 1}})
             .dump());
  RunsFolder runs(dir.path());
  runs.refresh();
  const nlohmann::json run = nlohmann::json::parse(runs.list_json())["runs"][0];
  EXPECT_EQ(run["status"], "stopped");
  EXPECT_NE(run["message"].get<std::string>().find("ended without saying"), std::string::npos);
}

// A status.json of the wrong shape is one run's problem: the others still list.
TEST(BoardRuns, AStatusFileOfTheWrongShapeSpoilsOnlyItsRun) {
  TempDir dir;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  const std::map<std::string, std::string> files = {
      {"good", R"({"status":"finished","started":10,"finished":20})"},
      {"number", R"({"status":123,"host":{}})"},
      {"pid_zero", nlohmann::json({{"status", "running"}, {"pid", 0}, {"host", host}}).dump()},
      {"pid_huge",
       nlohmann::json({{"status", "running"}, {"pid", 4294967297LL}, {"host", host}}).dump()},
      {"truncated", R"({"status": "running", "pid": )"},
      {"backwards", R"({"status":"finished","started":20,"finished":10})"}};
  for (const auto& [name, text] : files) {
    std::filesystem::create_directories(dir.path() / name);
    append(dir.path() / name / "status.json", text);
  }
  RunsFolder runs(dir.path());
  ASSERT_EQ(runs.refresh(), files.size());
  std::map<std::string, nlohmann::json> listed;
  const nlohmann::json listing = nlohmann::json::parse(runs.list_json());
  for (const auto& run : listing["runs"]) listed[run["name"].get<std::string>()] = run;
  EXPECT_EQ(listed["good"]["status"], "finished");
  EXPECT_EQ(listed["good"]["duration"], 10);
  EXPECT_EQ(listed["number"]["status"], "unknown");
  for (const char* name : {"pid_zero", "pid_huge"}) {
    EXPECT_EQ(listed[name]["status"], "unknown") << name;
    EXPECT_EQ(listed[name]["message"],
              "status.json says running but names no process id it could be")
        << name;
  }
  EXPECT_EQ(listed["truncated"]["status"], "unknown");
  EXPECT_EQ(listed["truncated"]["message"],
            "status.json is not a JSON object (damaged, or caught while being written)");
  EXPECT_TRUE(listed["backwards"]["duration"].is_null());
}

TEST(BoardServer, ServesThePageReadOnlyToLoopbackNamesOnly) {
  TempDir dir;
  std::filesystem::create_directories(dir.path() / "r");
  append(dir.path() / "r" / "metrics.jsonl", R"({"step":1,"train_loss":2})"
                                             "\n");
  BoardServer server(dir.path(), {.port = 0, .http_threads = 2});
  const int port = server.start();
  httplib::Client client("127.0.0.1", port);
  const auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<script src=\"board.js\">"), std::string::npos);
  EXPECT_NE(page->get_header_value("Content-Security-Policy").find("default-src 'none'"),
            std::string::npos);
  const auto uplot = client.Get("/uPlot.iife.min.js");
  ASSERT_TRUE(uplot);
  EXPECT_EQ(uplot->status, 200);
  EXPECT_EQ(uplot->get_header_value("Content-Type"), "application/javascript; charset=utf-8");
  EXPECT_GT(uplot->body.size(), 40000u);
  const auto runs = client.Get("/api/runs");
  ASSERT_TRUE(runs);
  EXPECT_EQ(nlohmann::json::parse(runs->body)["runs"][0]["name"], "r");
  const auto points = client.Get("/api/data?run=r", {{"Accept-Encoding", "gzip, deflate, br"}});
  ASSERT_TRUE(points);
  EXPECT_EQ(points->status, 200);
  EXPECT_EQ(points->get_header_value("Content-Encoding"), "")
      << "not compressed: httplib's brotli took seconds for a long run";
  for (const char* path : {"/api/data?run=..%2Fr", "/api/data?run=%2Fetc", "/api/data",
                           "/../r/metrics.jsonl", "/r/metrics.jsonl", "/nothing.js"}) {
    const auto answer = client.Get(path);
    ASSERT_TRUE(answer) << path;
    EXPECT_EQ(answer->status, 404) << path;
  }
  EXPECT_EQ(client.Post("/api/runs", "{}", "application/json")->status, 405);
  EXPECT_EQ(client.Delete("/api/runs")->status, 405);
  const auto rebound = client.Get("/api/runs", {{"Host", "attacker.example:80"}});
  ASSERT_TRUE(rebound);
  EXPECT_EQ(rebound->status, 403);
  server.stop();
}

TEST(BoardServer, ClearErrors) {
  TempDir dir;
  BoardServer first(dir.path(), {.port = 0});
  const int port = first.start();
  EXPECT_EQ(testing::error_of([&] { BoardServer(dir.path(), {.port = port}).start(); }),
            "board: cannot listen on 127.0.0.1:" + std::to_string(port) +
                " (port in use, or not an address of this machine); choose another with --port");
  EXPECT_EQ(testing::error_of([&] { BoardServer(dir.path(), {.port = 70000}); }),
            "board: port 70000 is not in 0..65535");
}

}  // namespace
}  // namespace lathe
