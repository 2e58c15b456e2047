// cpp-httplib as `lathe serve` runs it (src/http/connection_threads.h: a thread per connection,
// TCP_NODELAY), answering every POST /infer with a fixed body after reading the request's body.
// Prints "listening on PORT" once it accepts connections.
#include <cstdio>

#include "bench/http_transport/fixed_answer.h"
#include "src/http/connection_threads.h"

int main() {
  lathe::http::HttpServer server;
  server.new_task_queue = [] { return new lathe::http::ConnectionThreads(40, 1000); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(1000);
  server.Post("/infer", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(kFixedAnswer, sizeof(kFixedAnswer) - 1, "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port < 0) return 1;
  server.widen_accept_queue();
  std::printf("listening on %d\n", port);
  std::fflush(stdout);
  return server.listen_after_bind() ? 0 : 1;
}
