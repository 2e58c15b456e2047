#pragma once
// Internal: the HTTP/1.1 transport of `lathe serve`, on GNU libmicrohttpd. An epoll loop on each
// of a few threads serves every connection, so a connection that stalls or trickles bytes costs a
// socket and a little memory, not a thread. A request whose answer is computed elsewhere (a batch,
// a generation) holds no thread either: its connection is suspended until its Reply is sent, from
// whichever thread has the answer. Bodies arrive decoded (gzip, deflate, br) and within the size
// limit; the routes see whole requests only.
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct MHD_Connection;

namespace lathe::http {

struct Header {
  std::string name;
  std::string value;
};

struct Request {
  std::string method;
  std::string path;  // percent-decoded, without the query
  std::vector<Header> headers;
  std::string body;  // Content-Encoding undone

  // The first header of that name (case-insensitive); nullptr when there is none.
  const std::string* header(std::string_view name) const;
};

// A response body written piece by piece from another thread while the client reads it.
class Stream {
 public:
  // Queues `chunk`; false once the client has gone, when the producer should stop.
  bool write(std::string_view chunk);
  // The body is complete.
  void close();

  // For the transport: the connection it is sent on; bytes for the socket (0 after suspending the
  // connection when none are written yet, -1 at the end); the client has gone.
  void attach(MHD_Connection* connection);
  long read(char* buffer, std::size_t size);
  void release();

 private:
  void resume_locked();

  std::mutex mutex_;
  std::string pending_;  // written, not yet sent
  bool closed_ = false;
  bool gone_ = false;
  bool suspended_ = false;
  MHD_Connection* connection_ = nullptr;
};

struct Response {
  int status = 200;
  std::string content_type;  // no Content-Type header when empty
  std::string body;
  std::vector<Header> headers;
  std::shared_ptr<Stream> stream;  // when set, the body, sent chunked as it is written
};

class Exchange;

// Answers one request, once, from any thread; later sends do nothing. A request whose every
// Reply is dropped unsent is answered 500.
class Reply {
 public:
  explicit Reply(std::shared_ptr<Exchange> exchange);
  void send(Response response) const;

 private:
  struct Guard;
  std::shared_ptr<Guard> guard_;
};

struct EventServerOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: an ephemeral port
  int threads = 2;
  int max_connections = 4096;            // beyond, new connections wait unaccepted
  std::size_t max_body_bytes = 1 << 20;  // decoded; 413 beyond
  unsigned idle_timeout_seconds = 5;     // a connection with no traffic this long is closed
};

class EventServer {
 public:
  struct Hooks {
    // With the request's headers, before its body is read: a response refuses it.
    std::function<std::optional<Response>(const Request&)> screen;
    // The whole request; answers through the Reply, now or later, from any thread.
    std::function<void(Request&, Reply)> handle;
    // Every answer as it is queued (requests the server refused itself included).
    std::function<void(const Request&, int status)> answered;
    // A request the transport refused for its body (413, 415, 400), before any route saw it.
    std::function<void(const Request&, int status)> refused;
    // The body of an answer the transport gives itself (413, 415, 400 for a corrupt body, 500).
    std::function<Response(int status, std::string_view message)> error;
  };

  EventServer(EventServerOptions options, Hooks hooks);
  ~EventServer();  // stop()
  EventServer(const EventServer&) = delete;
  EventServer& operator=(const EventServer&) = delete;

  // Binds and starts the event threads; returns the port. Throws std::runtime_error.
  int start();
  // Stops accepting, waits for every request being answered, then closes every connection.
  void stop();

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace lathe::http
