// GNU libmicrohttpd (Debian libmicrohttpd-dev): event-driven, an epoll loop on each of THREADS
// threads (default 2), answering every POST /infer with the same fixed body as
// httplib_server.cpp once the request's body has arrived. Prints "listening on PORT".
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/http_transport/fixed_answer.h"

namespace {

MHD_Result answer(void*, MHD_Connection* connection, const char*, const char*, const char*,
                  const char* upload, size_t* upload_size, void** request) {
  if (*request == nullptr) {  // the headers: a body buffer for this request
    *request = new std::string;
    return MHD_YES;
  }
  auto* body = static_cast<std::string*>(*request);
  if (*upload_size != 0) {
    body->append(upload, *upload_size);
    *upload_size = 0;
    return MHD_YES;
  }
  MHD_Response* response = MHD_create_response_from_buffer(
      sizeof(kFixedAnswer) - 1, const_cast<char*>(kFixedAnswer), MHD_RESPMEM_PERSISTENT);
  MHD_add_response_header(response, "Content-Type", "application/json");
  const MHD_Result queued = MHD_queue_response(connection, 200, response);
  MHD_destroy_response(response);
  return queued;
}

void finished(void*, MHD_Connection*, void** request, MHD_RequestTerminationCode) {
  delete static_cast<std::string*>(*request);
  *request = nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  const unsigned threads = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 2;
  sockaddr_in loopback{};
  loopback.sin_family = AF_INET;
  loopback.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  MHD_Daemon* daemon =
      MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO, 0, nullptr, nullptr, &answer,
                       nullptr, MHD_OPTION_SOCK_ADDR, &loopback, MHD_OPTION_THREAD_POOL_SIZE,
                       threads, MHD_OPTION_NOTIFY_COMPLETED, &finished, nullptr,
                       MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_END);
  if (daemon == nullptr) return 1;
  std::printf("listening on %u\n", MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT)->port);
  std::fflush(stdout);
  pause();
}
