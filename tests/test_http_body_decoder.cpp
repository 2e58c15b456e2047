// BodyDecoder (src/http/body_decoder.h): request bodies compressed by zlib and brotli's own
// encoders come back byte for byte, fed whole or a byte at a time; the decoded size is held to
// the limit however small the compressed body; corrupt and cut-short streams are errors.
#include <brotli/encode.h>
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "src/http/body_decoder.h"
#include "tests/test_support.h"

namespace lathe::http {
namespace {

using lathe::testing::zlib_compress;

std::string brotli_compress(const std::string& text) {
  std::size_t size = BrotliEncoderMaxCompressedSize(text.size());
  std::string out(size, '\0');
  EXPECT_TRUE(BrotliEncoderCompress(5, BROTLI_DEFAULT_WINDOW, BROTLI_DEFAULT_MODE, text.size(),
                                    reinterpret_cast<const std::uint8_t*>(text.data()), &size,
                                    reinterpret_cast<std::uint8_t*>(out.data())));
  out.resize(size);
  return out;
}

// A JSON-ish body of `size` bytes that compresses well but not trivially.
std::string sample_body(std::size_t size) {
  std::string text;
  for (int i = 0; text.size() < size; ++i) text += std::to_string(i * 7919 % 1000) + ",";
  text.resize(size);
  return text;
}

struct Decoded {
  BodyDecoder::State state;
  std::string body;
};

Decoded decode(std::string_view encoding, const std::string& bytes, std::size_t limit,
               std::size_t piece) {
  BodyDecoder decoder(encoding, limit);
  for (std::size_t at = 0; at < bytes.size(); at += piece)
    decoder.feed(std::string_view(bytes).substr(at, piece));
  const BodyDecoder::State state = decoder.finish();
  return {state, decoder.body()};
}

TEST(BodyDecoder, UndoesEveryEncodingByteForByte) {
  const std::string text = sample_body(100000);
  const std::pair<const char*, std::string> cases[] = {
      {"", text},
      {"identity", text},
      {"gzip", zlib_compress(text, 15 + 16)},
      {"GZIP", zlib_compress(text, 15 + 16)},
      {"deflate", zlib_compress(text, 15)},
      {"br", brotli_compress(text)},
      {" br ", brotli_compress(text)},
  };
  for (const auto& [encoding, bytes] : cases)
    for (const std::size_t piece : {bytes.size(), std::size_t{1}, std::size_t{1000}}) {
      const Decoded decoded = decode(encoding, bytes, text.size(), piece);
      EXPECT_EQ(decoded.state, BodyDecoder::State::Reading) << encoding << " piece " << piece;
      EXPECT_TRUE(decoded.body == text) << encoding << " piece " << piece;
    }
}

TEST(BodyDecoder, HoldsTheDecodedSizeToTheLimit) {
  const std::string zeros(8 << 20, '0');  // 8 MB that compress to a few kilobytes
  const std::string gzip = zlib_compress(zeros, 15 + 16);
  const std::string br = brotli_compress(zeros);
  ASSERT_LT(gzip.size(), 100000u);
  for (const auto& [encoding, bytes] : {std::pair<const char*, std::string>{"gzip", gzip},
                                        std::pair<const char*, std::string>{"br", br},
                                        std::pair<const char*, std::string>{"", zeros}}) {
    const Decoded decoded = decode(encoding, bytes, 1 << 20, 4096);
    EXPECT_EQ(decoded.state, BodyDecoder::State::TooLarge) << encoding;
    EXPECT_TRUE(decoded.body.empty()) << encoding;
  }
  // Exactly at the limit is within it.
  const std::string text = sample_body(5000);
  EXPECT_EQ(decode("gzip", zlib_compress(text, 15 + 16), 5000, 7).state,
            BodyDecoder::State::Reading);
  EXPECT_EQ(decode("gzip", zlib_compress(text, 15 + 16), 4999, 7).state,
            BodyDecoder::State::TooLarge);
}

TEST(BodyDecoder, CorruptOrCutShortStreamsAreErrors) {
  const std::string text = sample_body(20000);
  const std::string gzip = zlib_compress(text, 15 + 16);
  const std::string br = brotli_compress(text);
  EXPECT_EQ(decode("gzip", text, 1 << 20, 100).state, BodyDecoder::State::Corrupt);
  EXPECT_EQ(decode("br", text, 1 << 20, 100).state, BodyDecoder::State::Corrupt);
  EXPECT_EQ(decode("gzip", gzip.substr(0, gzip.size() / 2), 1 << 20, 100).state,
            BodyDecoder::State::Corrupt);
  EXPECT_EQ(decode("br", br.substr(0, br.size() / 2), 1 << 20, 100).state,
            BodyDecoder::State::Corrupt);
  EXPECT_EQ(decode("gzip", gzip + "trailing", 1 << 20, 100).state, BodyDecoder::State::Corrupt);
  // An empty body is empty whatever its Content-Encoding says.
  EXPECT_EQ(decode("gzip", "", 100, 1).state, BodyDecoder::State::Reading);
  EXPECT_EQ(decode("br", "", 100, 1).state, BodyDecoder::State::Reading);
  // What is wrong, in words that name the encoding.
  BodyDecoder cut("gzip", 1 << 20);
  cut.feed(gzip.substr(0, gzip.size() / 2));
  EXPECT_EQ(cut.finish(), BodyDecoder::State::Corrupt);
  EXPECT_EQ(cut.problem(), "the gzip body is cut short: its compressed stream does not end");
  BodyDecoder trailing("br", 1 << 20);
  EXPECT_EQ(trailing.feed(br + "x"), BodyDecoder::State::Corrupt);
  EXPECT_EQ(trailing.problem(), "the br body goes on after the end of its compressed stream");
  BodyDecoder plain("deflate", 1 << 20);
  EXPECT_EQ(plain.feed(text), BodyDecoder::State::Corrupt);
  EXPECT_EQ(plain.problem(),
            "the deflate body is not valid zlib data (a raw deflate stream needs the zlib header)");
  EXPECT_THROW(BodyDecoder("compress", 100), std::invalid_argument);
  EXPECT_THROW(BodyDecoder("gzip, br", 100), std::invalid_argument);
}

}  // namespace
}  // namespace lathe::http
