// The libmicrohttpd transport: one Exchange per request, from its headers to the end of its answer.
#include "src/http/event_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <stdexcept>
#include <string>

#include "src/http/ascii.h"
#include "src/http/body_decoder.h"

namespace lathe::http {

const std::string* Request::header(std::string_view name) const {
  for (const Header& header : headers)
    if (equals_ignoring_case(header.name, name)) return &header.value;
  return nullptr;
}

// ---- Stream -------------------------------------------------------------------------------------

bool Stream::write(std::string_view chunk) {
  std::lock_guard lock(mutex_);
  if (gone_) return false;
  pending_.append(chunk);
  resume_locked();
  return true;
}

void Stream::close() {
  std::lock_guard lock(mutex_);
  closed_ = true;
  resume_locked();
}

void Stream::attach(MHD_Connection* connection) {
  std::lock_guard lock(mutex_);
  connection_ = connection;
}

void Stream::resume_locked() {
  if (!suspended_) return;
  suspended_ = false;
  MHD_resume_connection(connection_);
}

long Stream::read(char* buffer, std::size_t size) {
  std::lock_guard lock(mutex_);
  if (!pending_.empty()) {
    const std::size_t n = std::min(size, pending_.size());
    std::memcpy(buffer, pending_.data(), n);
    pending_.erase(0, n);
    return static_cast<long>(n);
  }
  if (closed_) return -1;
  // Nothing yet: the connection waits, off the event loop, until write() or close() resumes it.
  // (Returning 0 without suspending would have libmicrohttpd ask again at once, in a busy loop.)
  suspended_ = true;
  MHD_suspend_connection(connection_);
  return 0;
}

void Stream::release() {
  std::lock_guard lock(mutex_);
  gone_ = true;
  suspended_ = false;
  connection_ = nullptr;
}

// ---- Exchange -----------------------------------------------------------------------------------

struct EventServer::Impl {
  EventServerOptions options;
  Hooks hooks;
  MHD_Daemon* daemon = nullptr;
  int listen_socket = -1;  // handed back by MHD_quiesce_daemon, closed by stop()
  std::atomic<bool> stopping{false};
  std::mutex in_flight_mutex;
  std::condition_variable all_answered;
  long in_flight = 0;  // requests handed to hooks.handle and not yet completed

  void begin() {
    std::lock_guard lock(in_flight_mutex);
    ++in_flight;
  }
  void end() {
    std::lock_guard lock(in_flight_mutex);
    if (--in_flight == 0) all_answered.notify_all();
  }
};

// One request on one connection: its headers and body as they arrive, then its answer. The
// connection's slot in libmicrohttpd holds a shared_ptr to it until the request completes; each
// Reply holds another, so an answer sent late finds it alive.
class Exchange {
 public:
  Exchange(EventServer::Impl& server, MHD_Connection* connection)
      : server_(server), connection_(connection) {}

  // The first call: the request line and headers.
  void start(const char* method, const char* url) {
    request_.method = method;
    request_.path = url;
    MHD_get_connection_values(
        connection_, MHD_HEADER_KIND,
        [](void* cls, MHD_ValueKind, const char* name, const char* value) {
          static_cast<Request*>(cls)->headers.push_back({name, value ? value : ""});
          return MHD_YES;
        },
        &request_);
    if (server_.hooks.screen)
      if (std::optional<Response> refusal = server_.hooks.screen(request_))
        return queue_now(std::move(*refusal));
    const std::size_t limit = server_.options.max_body_bytes;
    if (const std::string* length = request_.header("Content-Length")) {
      // A body declared too large is refused now if it is huge, or else read and dropped first
      // (see receive()).
      const unsigned long long declared = std::strtoull(length->c_str(), nullptr, 10);
      if (declared > drain_cap()) return queue_now(too_large());
      if (declared > limit) {
        refusal_ = too_large();
        return;
      }
    }
    const std::string* encoding = request_.header("Content-Encoding");
    try {
      decoder_ = std::make_unique<BodyDecoder>(encoding ? *encoding : "", limit);
    } catch (const std::invalid_argument& unsupported) {
      queue_now(refused(415, unsupported.what()));
    }
  }

  // A piece of the body.
  void receive(const char* data, std::size_t size) {
    if (queued_) return;
    if (refusal_) {
      // Past the limit the rest is read and dropped, up to a cap, so that the answer reaches a
      // client still sending: closing with unread data would reset the connection and lose it.
      dropped_ += size;
      if (dropped_ > drain_cap()) queue_now(std::move(*refusal_));
      return;
    }
    switch (decoder_->feed(std::string_view(data, size))) {
      case BodyDecoder::State::Reading:
        return;
      case BodyDecoder::State::TooLarge:
        refusal_ = too_large();
        return;
      case BodyDecoder::State::Corrupt:
        refusal_ = refused(400, decoder_->problem());
        return;
    }
  }

  // The body is complete, or the connection was resumed with an answer.
  void proceed(const std::shared_ptr<Exchange>& self) {
    if (queued_) return;
    if (refusal_) return queue_now(std::move(*refusal_));
    if (!dispatched_) {
      if (decoder_->finish() != BodyDecoder::State::Reading)
        return queue_now(refused(400, decoder_->problem()));
      request_.body = std::move(decoder_->body());
      decoder_.reset();
      dispatched_ = true;
      server_.begin();
      const Reply reply(self);
      try {
        server_.hooks.handle(request_, reply);
      } catch (const std::exception& e) {
        reply.send(server_.hooks.error(500, std::string("internal error: ") + e.what()));
      }
    }
    std::unique_lock lock(mutex_);
    if (answer_) {
      Response answer = std::move(*answer_);
      answer_.reset();
      lock.unlock();
      return queue_now(std::move(answer));
    }
    suspended_ = true;
    MHD_suspend_connection(connection_);
  }

  // From Reply::send, on any thread: the first answer wins.
  void deliver(Response response) {
    std::lock_guard lock(mutex_);
    if (replied_) return;
    replied_ = true;
    answer_ = std::move(response);
    if (suspended_) {
      suspended_ = false;
      MHD_resume_connection(connection_);
    }
  }

  bool replied() {
    std::lock_guard lock(mutex_);
    return replied_;
  }

  void completed() {
    if (dispatched_) server_.end();
  }

  EventServer::Impl& server() { return server_; }

 private:
  std::size_t drain_cap() const {
    return std::max<std::size_t>(server_.options.max_body_bytes, 1 << 20);
  }

  Response too_large() {
    return refused(413, "the request body is larger than " +
                            std::to_string(server_.options.max_body_bytes) +
                            " bytes (--max-body-bytes)");
  }

  // An answer the transport gives itself, about the request's body.
  Response refused(int status, const std::string& message) {
    if (server_.hooks.refused) server_.hooks.refused(request_, status);
    return server_.hooks.error(status, message);
  }

  void queue_now(Response response) {
    queued_ = true;
    MHD_Response* mhd = nullptr;
    if (response.stream) {
      Stream* stream = response.stream.get();
      stream->attach(connection_);
      mhd = MHD_create_response_from_callback(
          MHD_SIZE_UNKNOWN, 4096,
          [](void* cls, std::uint64_t, char* buffer, std::size_t size) -> ssize_t {
            const long n = (*static_cast<std::shared_ptr<Stream>*>(cls))->read(buffer, size);
            return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
          },
          new std::shared_ptr<Stream>(response.stream),
          [](void* cls) {
            auto* held = static_cast<std::shared_ptr<Stream>*>(cls);
            (*held)->release();
            delete held;
          });
    } else {
      mhd = MHD_create_response_from_buffer(response.body.size(), response.body.data(),
                                            MHD_RESPMEM_MUST_COPY);
    }
    if (!mhd) return;  // out of memory: libmicrohttpd closes the connection
    if (!response.content_type.empty())
      MHD_add_response_header(mhd, MHD_HTTP_HEADER_CONTENT_TYPE, response.content_type.c_str());
    for (const Header& header : response.headers)
      MHD_add_response_header(mhd, header.name.c_str(), header.value.c_str());
    if (server_.stopping) MHD_add_response_header(mhd, MHD_HTTP_HEADER_CONNECTION, "close");
    MHD_queue_response(connection_, static_cast<unsigned>(response.status), mhd);
    MHD_destroy_response(mhd);
    if (server_.hooks.answered) server_.hooks.answered(request_, response.status);
  }

  EventServer::Impl& server_;
  MHD_Connection* const connection_;
  Request request_;
  std::unique_ptr<BodyDecoder> decoder_;
  std::optional<Response> refusal_;  // decided while reading; sent once the body is drained
  std::size_t dropped_ = 0;
  bool dispatched_ = false;  // handed to hooks.handle
  bool queued_ = false;      // an answer is queued on the connection

  std::mutex mutex_;  // the fields below, shared with the thread that answers
  std::optional<Response> answer_;
  bool replied_ = false;
  bool suspended_ = false;
};

struct Reply::Guard {
  explicit Guard(std::shared_ptr<Exchange> answering) : exchange(std::move(answering)) {}
  Guard(const Guard&) = delete;
  Guard& operator=(const Guard&) = delete;
  ~Guard() {
    if (!exchange->replied())
      exchange->deliver(exchange->server().hooks.error(500, "internal error: no answer"));
  }
  const std::shared_ptr<Exchange> exchange;
};

Reply::Reply(std::shared_ptr<Exchange> exchange)
    : guard_(std::make_shared<Guard>(std::move(exchange))) {}

void Reply::send(Response response) const {
  guard_->exchange->deliver(std::move(response));
}

// ---- EventServer --------------------------------------------------------------------------------

namespace {

MHD_Result on_request(void* cls, MHD_Connection* connection, const char* url, const char* method,
                      const char*, const char* upload, std::size_t* upload_size, void** slot) {
  auto& server = *static_cast<EventServer::Impl*>(cls);
  auto* held = static_cast<std::shared_ptr<Exchange>*>(*slot);
  try {
    if (!held) {
      held = new std::shared_ptr<Exchange>(std::make_shared<Exchange>(server, connection));
      *slot = held;
      (*held)->start(method, url);
      return MHD_YES;
    }
    if (*upload_size != 0) {
      (*held)->receive(upload, *upload_size);
      *upload_size = 0;
      return MHD_YES;
    }
    (*held)->proceed(*held);
    return MHD_YES;
  } catch (const std::exception&) {
    return MHD_NO;  // out of memory, say: libmicrohttpd closes the connection
  }
}

void on_completed(void*, MHD_Connection*, void** slot, MHD_RequestTerminationCode) {
  auto* held = static_cast<std::shared_ptr<Exchange>*>(*slot);
  if (!held) return;
  (*held)->completed();
  delete held;
  *slot = nullptr;
}

// Percent-decodes a request path in place, except "%2F": an encoded slash stays three characters,
// so that it cannot split a path segment (a model name) into two.
std::size_t unescape_path(void*, MHD_Connection*, char* text) {
  const auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  char* out = text;
  for (const char* in = text; *in;) {
    const int high = in[0] == '%' ? hex(in[1]) : -1;
    const int low = high >= 0 ? hex(in[2]) : -1;
    const int byte = high * 16 + low;
    if (low >= 0 && byte != '/' && byte != 0) {
      *out++ = static_cast<char>(byte);
      in += 3;
    } else {
      *out++ = *in++;
    }
  }
  *out = '\0';
  return static_cast<std::size_t>(out - text);
}

// The address to listen on: a numeric host, or a name that resolves to this machine.
sockaddr_storage resolve(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.c_str(), service.c_str(), &hints, &found) != 0 || !found)
    throw std::runtime_error("'" + host + "' is not an address of this machine");
  sockaddr_storage address{};
  std::memcpy(&address, found->ai_addr, found->ai_addrlen);
  freeaddrinfo(found);
  return address;
}

}  // namespace

EventServer::EventServer(EventServerOptions options, Hooks hooks)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  impl_->hooks = std::move(hooks);
}

EventServer::~EventServer() {
  stop();
}

int EventServer::start() {
  Impl& impl = *impl_;
  const sockaddr_storage address = resolve(impl.options.host, impl.options.port);
  unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_TURBO;
  if (address.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
  const unsigned threads = static_cast<unsigned>(std::max(1, impl.options.threads));
  impl.daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &on_request, &impl, MHD_OPTION_SOCK_ADDR, &address,
      MHD_OPTION_THREAD_POOL_SIZE, threads, MHD_OPTION_CONNECTION_LIMIT,
      static_cast<unsigned>(std::max(impl.options.max_connections, impl.options.threads)),
      MHD_OPTION_CONNECTION_TIMEOUT, impl.options.idle_timeout_seconds,
      MHD_OPTION_LISTEN_BACKLOG_SIZE, static_cast<unsigned>(SOMAXCONN),
      // SO_REUSEADDR: a restarted server binds its port while the last one's connections linger.
      MHD_OPTION_LISTENING_ADDRESS_REUSE, 1u, MHD_OPTION_NOTIFY_COMPLETED, &on_completed, nullptr,
      MHD_OPTION_UNESCAPE_CALLBACK, &unescape_path, nullptr, MHD_OPTION_END);
  if (!impl.daemon)
    throw std::runtime_error("cannot listen on " + impl.options.host + ":" +
                             std::to_string(impl.options.port) +
                             " (address in use, or not an address of this machine)");
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl.daemon, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : impl.options.port;
}

void EventServer::stop() {
  Impl& impl = *impl_;
  if (!impl.daemon) return;
  impl.stopping = true;
  impl.listen_socket = MHD_quiesce_daemon(impl.daemon);
  // The socket stays open until the event threads are gone, but stops listening now: a client
  // connecting meanwhile is refused at once (and can go elsewhere) rather than queued unserved.
  if (impl.listen_socket >= 0) ::shutdown(impl.listen_socket, SHUT_RDWR);
  {
    std::unique_lock lock(impl.in_flight_mutex);
    impl.all_answered.wait(lock, [&] { return impl.in_flight == 0; });
  }
  MHD_stop_daemon(impl.daemon);
  impl.daemon = nullptr;
  if (impl.listen_socket >= 0) ::close(impl.listen_socket);
  impl.listen_socket = -1;
}

}  // namespace lathe::http
