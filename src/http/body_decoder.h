#pragma once
// Internal: a request body as it arrives, its Content-Encoding (gzip, deflate or br) undone
// piece by piece with zlib and libbrotlidec, and the decoded size held to a limit, so that a
// small compressed body cannot expand into gigabytes before anyone checks.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace lathe::http {

class BodyDecoder {
 public:
  // `encoding` is the Content-Encoding header's value ("" or "identity" for none). Throws
  // std::invalid_argument for an encoding it cannot undo.
  BodyDecoder(std::string_view encoding, std::size_t limit);
  ~BodyDecoder();
  BodyDecoder(const BodyDecoder&) = delete;
  BodyDecoder& operator=(const BodyDecoder&) = delete;

  enum class State { Reading, TooLarge, Corrupt };
  // Decodes `bytes` onto body(). Once the body is past the limit or cannot be decoded, the
  // state stays so and further bytes are dropped.
  State feed(std::string_view bytes);
  // After the last bytes: Corrupt if a compressed stream stopped short.
  State finish();

  std::string& body() { return body_; }
  // Once Corrupt: what is wrong, naming the encoding ("the gzip body is cut short").
  const std::string& problem() const { return problem_; }

 private:
  struct Inflater;
  std::size_t limit_;
  std::string body_;
  std::size_t received_ = 0;  // encoded bytes fed
  std::string name_;          // the encoding, as the client wrote it
  std::string problem_;
  State state_ = State::Reading;
  std::unique_ptr<Inflater> inflater_;  // null for an identity body
};

}  // namespace lathe::http
