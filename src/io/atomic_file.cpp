// Atomic replacement of a file: write a temporary beside it, fsync, rename over, fsync the
// directory. A crash at any point leaves either the old file or the new one, never a mix.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "lathe/error.h"
#include "lathe/io.h"

namespace lathe {
namespace {

[[noreturn]] void fail_file(const std::filesystem::path& path, const char* what) {
  throw Error(fmt::format("{}: cannot {}: {}", path.string(), what, std::strerror(errno)));
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path, const std::string& contents) {
  const std::filesystem::path directory =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  const std::filesystem::path temporary =
      directory / fmt::format(".{}.tmp{}", path.filename().string(), ::getpid());
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    std::error_code ignored;
    if ((error == ENOENT || error == ENOTDIR) && !std::filesystem::is_directory(directory, ignored))
      throw Error(std::filesystem::exists(directory, ignored)
                      ? fmt::format("{}: cannot write: {} is a file, not a folder", path.string(),
                                    directory.string())
                      : fmt::format("{}: cannot write: the folder {} does not exist", path.string(),
                                    directory.string()));
    throw Error(fmt::format("{}: cannot write (creating {}): {}", path.string(), temporary.string(),
                            std::strerror(error)));
  }
  std::size_t written = 0;
  while (written < contents.size()) {
    const ssize_t n = ::write(fd, contents.data() + written, contents.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      ::unlink(temporary.c_str());
      fail_file(temporary, "write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(temporary.c_str());
    fail_file(temporary, "sync");
  }
  if (std::rename(temporary.c_str(), path.c_str()) != 0) {
    ::unlink(temporary.c_str());
    fail_file(path, "replace");
  }
  const int dir_fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    ::fsync(dir_fd);
    ::close(dir_fd);
  }
}

}  // namespace lathe
