// libFuzzer target: a request body as lathe serve's transport decodes it (src/http/body_decoder.h).
// The first byte picks the Content-Encoding, the second how the rest arrives (pieces of 1 to 256
// bytes); the rest is the body. A decoded body over the limit, a refused one that keeps bytes, an
// identity body that changes, or any exception is a finding.
#include "fuzz/fuzz_support.h"
#include "src/http/body_decoder.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  static const char* const kEncodings[] = {"", "gzip", "deflate", "br"};
  const char* encoding = kEncodings[data[0] % 4];
  const std::size_t piece = std::size_t{data[1]} + 1;
  const std::string body(lathe::fuzz::bytes_of(data + 2, size - 2));
  constexpr std::size_t kLimit = 1 << 16;
  lathe::http::BodyDecoder decoder(encoding, kLimit);
  for (std::size_t at = 0; at < body.size(); at += piece)
    decoder.feed(std::string_view(body).substr(at, piece));
  const lathe::http::BodyDecoder::State state = decoder.finish();
  if (state == lathe::http::BodyDecoder::State::Reading) {
    lathe::fuzz::require(decoder.body().size() <= kLimit, "a decoded body is over the limit");
    if (*encoding == '\0') lathe::fuzz::require(decoder.body() == body, "an identity body changed");
  } else {
    lathe::fuzz::require(decoder.body().empty(), "a refused body keeps its bytes");
  }
  return 0;
}
