// `lathe board [RUNS_DIR]`: the live training dashboard. All the work is in src/board/; this
// reads the options, prints the address and serves until the process is ended (Ctrl-C): the
// board only reads, so there is nothing to finish first.
#include <fmt/format.h>

#include <iostream>

#include "lathe/board.h"
#include "src/cli/commands.h"

namespace lathe::cli {
namespace {

struct BoardCliOptions {
  std::string runs_dir = "runs";
  BoardOptions board;
};

void run_board(const BoardCliOptions& options) {
  BoardServer server(options.runs_dir, options.board);
  const int port = server.start();
  const std::string& host = options.board.host;
  const std::string shown = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  std::cout << fmt::format("lathe board: {} runs under {}; open http://{}:{}/ (Ctrl-C to stop)",
                           server.runs_found(), options.runs_dir, shown, port)
            << std::endl;
  server.wait();
}

}  // namespace

void add_board_command(CLI::App& app) {
  auto options = std::make_shared<BoardCliOptions>();
  CLI::App* cmd = app.add_subcommand(
      "board",
      "A live training dashboard in the browser: the curves of every run under RUNS_DIR (any "
      "folder with metrics.jsonl or status.json, at any depth), updated while they train, "
      "overlaid for comparison, with a table of status, differing config keys and results. "
      "Read-only; binds 127.0.0.1 unless told otherwise (docs/board.md)");
  cmd->add_option("runs_dir", options->runs_dir, "the folder that holds the runs")
      ->capture_default_str();
  cmd->add_option("--host", options->board.host,
                  "address to bind; another than 127.0.0.1 shows the runs to other machines")
      ->capture_default_str();
  cmd->add_option("--port", options->board.port, "port to bind; 0 picks a free one")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->callback([options] { run_board(*options); });
}

}  // namespace lathe::cli
