// BoardServer: the board's HTTP side. GET only: the embedded page and uPlot, the runs listing
// and a run's new points. Every answer forbids loading anything from elsewhere (CSP).
#include <fmt/format.h>
#include <httplib.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <thread>

#include "lathe/board.h"
#include "lathe/error.h"
#include "src/board/assets.h"
#include "src/board/runs.h"
#include "src/http/connection_threads.h"

namespace lathe {
namespace {

// The page may load its own files and talk to this server, nothing else; uPlot sets inline
// styles, the page's own script is a file.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' "
    "data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

bool loopback(const std::string& host) {
  return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.starts_with("127.");
}

// Host header's name part: "127.0.0.1:6006" -> "127.0.0.1", "[::1]:6006" -> "::1".
std::string host_name(const std::string& header) {
  if (header.starts_with("[")) {
    const std::size_t end = header.find(']');
    return end == std::string::npos ? header : header.substr(1, end - 1);
  }
  return header.substr(0, header.find(':'));
}

std::int64_t integer_parameter(const httplib::Request& request, const char* name) {
  if (!request.has_param(name)) return 0;
  const std::string text = request.get_param_value(name);
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  return error == std::errc() && end == text.data() + text.size() ? value : -1;
}

// With "; charset=utf-8" the answers are not compressed: Debian's cpp-httplib compresses
// "application/json" exactly (and text/*) with brotli at its slowest setting when the browser
// accepts it, which took 11 s for 1 MB of points; on loopback nothing is gained by it.
constexpr const char* kJson = "application/json; charset=utf-8";

void answer_error(httplib::Response& response, int status, const std::string& message) {
  response.status = status;
  response.set_content(nlohmann::json({{"error", message}}).dump(), kJson);
}

// Whether another socket listens on host:port. httplib binds with SO_REUSEPORT, so a second
// server on a port in use would share it silently; a probe bound without it fails instead.
bool port_in_use(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return false;
  bool in_use = false;
  for (addrinfo* a = found; a && !in_use; a = a->ai_next) {
    const int probe = ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (probe < 0) continue;
    const int yes = 1;
    ::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);  // TIME_WAIT is not use
    in_use = ::bind(probe, a->ai_addr, a->ai_addrlen) != 0 && errno == EADDRINUSE;
    ::close(probe);
  }
  ::freeaddrinfo(found);
  return in_use;
}

}  // namespace

struct BoardServer::Impl {
  BoardOptions options;
  board::RunsFolder runs;
  std::size_t runs_found = 0;
  http::HttpServer http;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  std::mutex lifecycle;
  int port = -1;
  bool stopped = false;

  Impl(const std::filesystem::path& dir, BoardOptions o) : options(std::move(o)), runs(dir) {}

  void install_routes() {
    const bool check_host = loopback(options.host);
    http.set_pre_routing_handler(
        [check_host](const httplib::Request& request, httplib::Response& response) {
          response.set_header("Content-Security-Policy", kContentSecurityPolicy);
          response.set_header("X-Content-Type-Options", "nosniff");
          response.set_header("Referrer-Policy", "no-referrer");
          response.set_header("Cache-Control", "no-store");
          // Bound to loopback, a page of another site that points a name of its own at 127.0.0.1
          // (DNS rebinding) still sends its own name as Host: refused.
          if (check_host && !loopback(host_name(request.get_header_value("Host")))) {
            answer_error(response, 403, "board: requests must name this machine (localhost)");
            return httplib::Server::HandlerResponse::Handled;
          }
          if (request.method != "GET" && request.method != "HEAD") {
            answer_error(response, 405, "board: read-only; only GET is answered");
            return httplib::Server::HandlerResponse::Handled;
          }
          return httplib::Server::HandlerResponse::Unhandled;
        });
    const auto serve_asset = [](std::string_view name, httplib::Response& response) {
      for (const board::Asset& asset : board::embedded_assets())
        if (asset.name == name) {
          response.set_content(asset.bytes.data(), asset.bytes.size(),
                               std::string(asset.content_type));
          return true;
        }
      return false;
    };
    http.Get("/", [serve_asset](const httplib::Request&, httplib::Response& response) {
      serve_asset("index.html", response);
    });
    http.Get("/api/runs", [this](const httplib::Request&, httplib::Response& response) {
      runs.refresh();
      response.set_content(runs.list_json(), kJson);
    });
    http.Get("/api/data", [this](const httplib::Request& request, httplib::Response& response) {
      const std::optional<std::string> body = runs.data_json(
          request.get_param_value("run"), integer_parameter(request, "metrics_from"),
          integer_parameter(request, "metrics_generation"), integer_parameter(request, "log_from"),
          integer_parameter(request, "log_generation"));
      if (!body) return answer_error(response, 404, "board: no such run in the runs folder");
      response.set_content(*body, kJson);
    });
    http.Get(R"(/([A-Za-z0-9_.-]+))",
             [serve_asset](const httplib::Request& request, httplib::Response& response) {
               if (!serve_asset(request.matches[1].str(), response))
                 answer_error(response, 404, "board: not found");
             });
    http.set_exception_handler(
        [](const httplib::Request&, httplib::Response& response, std::exception_ptr thrown) {
          std::string what = "unknown exception";
          try {
            std::rethrow_exception(thrown);
          } catch (const std::exception& e) {
            what = e.what();
          } catch (...) {
          }
          answer_error(response, 500, "board: internal error: " + what);
        });
    http.set_error_handler([](const httplib::Request&, httplib::Response& response) {
      if (response.body.empty())
        answer_error(response, response.status,
                     response.status == 404 ? "board: not found"
                                            : fmt::format("board: HTTP {}", response.status));
    });
  }
};

BoardServer::BoardServer(const std::filesystem::path& runs_dir, BoardOptions options) {
  if (options.port < 0 || options.port > 65535)
    throw Error(fmt::format("board: port {} is not in 0..65535", options.port));
  if (options.http_threads < 1) throw Error("board: --threads must be at least 1");
  if (options.max_connections < options.http_threads)
    throw Error("board: max_connections must be at least http_threads");
  impl_ = std::make_unique<Impl>(runs_dir, std::move(options));
  impl_->runs_found = impl_->runs.refresh();
  impl_->runs.prepare_answers();
  impl_->install_routes();
}

BoardServer::~BoardServer() {
  stop();
}

int BoardServer::start() {
  std::lock_guard lock(impl_->lifecycle);
  if (impl_->stopped) throw Error("board: the server was stopped");
  if (impl_->port >= 0) return impl_->port;
  const BoardOptions& o = impl_->options;
  // A thread per connection (src/http/connection_threads.h): a fixed pool of 8 was held by any
  // 8 clients that connected and sent nothing.
  impl_->http.new_task_queue = [warm = o.http_threads, most = o.max_connections] {
    return new http::ConnectionThreads(warm, most);
  };
  const int port =
      o.port == 0
          ? impl_->http.bind_to_any_port(o.host)
          : (!port_in_use(o.host, o.port) && impl_->http.bind_to_port(o.host, o.port) ? o.port
                                                                                      : -1);
  if (port < 0)
    throw Error(fmt::format(
        "board: cannot listen on {}:{} (port in use, or not an address of this machine); "
        "choose another with --port",
        o.host, o.port));
  impl_->http.widen_accept_queue();
  Impl* impl = impl_.get();
  impl_->listener = std::thread([impl] {
    impl->http.listen_after_bind();
    impl->listener_done = true;
  });
  while (!impl_->http.is_running() && !impl_->listener_done)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (impl_->listener_done) {
    impl_->listener.join();
    throw Error(fmt::format("board: listening on {}:{} failed", o.host, port));
  }
  impl_->port = port;
  return port;
}

void BoardServer::wait() {
  while (!impl_->listener_done) std::this_thread::sleep_for(std::chrono::milliseconds(100));
}

void BoardServer::stop() {
  std::lock_guard lock(impl_->lifecycle);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

int BoardServer::port() const {
  return impl_->port;
}

std::size_t BoardServer::runs_found() const {
  return impl_->runs_found;
}

}  // namespace lathe
