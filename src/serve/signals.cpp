// ServeSignals: the self-pipe pattern. The handlers write the signal number to a pipe, which is
// all they do (write(2) is async-signal-safe); serve_until_stopped reads the pipe on a normal
// thread and does the real work. Handlers, not sigwait: threads started before main (OpenBLAS's)
// do not block the signals, and one delivered there with the default action would kill the
// process.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>

#include "lathe/error.h"
#include "lathe/serve.h"

namespace lathe {
namespace {

volatile std::sig_atomic_t g_signal_pipe = -1;  // the write end, for the handler
constexpr int kHandled[] = {SIGTERM, SIGINT, SIGHUP};
struct sigaction g_previous[3];
struct sigaction g_previous_pipe;

extern "C" void forward_signal(int signal_number) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal_number);
  [[maybe_unused]] const ssize_t written = ::write(g_signal_pipe, &byte, 1);
  errno = saved_errno;
}

}  // namespace

ServeSignals::ServeSignals() {
  if (g_signal_pipe != -1) throw Error("serve: signals are already being handled");
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0)
    throw Error(fmt::format("serve: cannot create the signal pipe: {}", std::strerror(errno)));
  // A full pipe drops a signal rather than blocking the handler.
  ::fcntl(fds[1], F_SETFL, ::fcntl(fds[1], F_GETFL) | O_NONBLOCK);
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  g_signal_pipe = write_fd_;

  struct sigaction action {};
  action.sa_handler = forward_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int i = 0; i < 3; ++i) ::sigaction(kHandled[i], &action, &g_previous[i]);
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  ::sigaction(SIGPIPE, &ignore, &g_previous_pipe);
}

ServeSignals::~ServeSignals() {
  for (int i = 0; i < 3; ++i) ::sigaction(kHandled[i], &g_previous[i], nullptr);
  ::sigaction(SIGPIPE, &g_previous_pipe, nullptr);
  g_signal_pipe = -1;
  ::close(read_fd_);
  ::close(write_fd_);
}

void ServeSignals::serve_until_stopped(InferenceServer& server) {
  for (;;) {
    unsigned char byte = 0;
    const ssize_t got = ::read(read_fd_, &byte, 1);
    if (got < 0 && errno == EINTR) continue;
    if (got != 1) break;  // cannot happen while the write end is open; stop rather than spin
    if (byte == SIGHUP) {
      std::fprintf(stderr, "lathe serve: SIGHUP: reloading the bundles\n");
      server.reload_all();
      continue;
    }
    std::fprintf(stderr, "lathe serve: %s: finishing the requests in flight, then exiting\n",
                 byte == SIGINT ? "SIGINT" : "SIGTERM");
    break;
  }
  server.stop();
  std::fprintf(stderr, "lathe serve: stopped\n");
}

}  // namespace lathe
