// Request bodies decoded under a size limit: zlib for gzip and deflate, libbrotlidec for br.
#include "src/http/body_decoder.h"

#include <brotli/decode.h>
#include <zlib.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "src/http/ascii.h"

namespace lathe::http {
namespace {

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace

// One decompressor: zlib's inflate (gzip or zlib-wrapped deflate, told apart by the header, as
// HTTP clients send either for "deflate") or brotli's decoder.
struct BodyDecoder::Inflater {
  bool brotli = false;
  z_stream zlib{};
  BrotliDecoderState* br = nullptr;
  bool ended = false;  // the compressed stream said it was complete

  explicit Inflater(bool use_brotli) : brotli(use_brotli) {
    if (brotli) {
      br = BrotliDecoderCreateInstance(nullptr, nullptr, nullptr);
      if (!br) throw std::bad_alloc();
    } else if (inflateInit2(&zlib, 15 + 32) != Z_OK) {
      throw std::bad_alloc();
    }
  }
  ~Inflater() {
    if (brotli)
      BrotliDecoderDestroyInstance(br);
    else
      inflateEnd(&zlib);
  }

  // Appends what `input` decodes to onto `out`, at most `room` bytes; false on corrupt data or
  // bytes after the end of the stream (`trailing` says which). Sets `overflow` when the output
  // would pass `room`.
  bool trailing = false;
  bool run(std::string_view input, std::string& out, std::size_t room, bool& overflow) {
    char buffer[16384];
    if (brotli) {
      const auto* next_in = reinterpret_cast<const std::uint8_t*>(input.data());
      std::size_t available_in = input.size();
      for (;;) {
        auto* next_out = reinterpret_cast<std::uint8_t*>(buffer);
        std::size_t available_out = sizeof buffer;
        const BrotliDecoderResult result = BrotliDecoderDecompressStream(
            br, &available_in, &next_in, &available_out, &next_out, nullptr);
        if (result == BROTLI_DECODER_RESULT_ERROR) return false;
        if (!append(buffer, sizeof buffer - available_out, out, room, overflow)) return true;
        if (result == BROTLI_DECODER_RESULT_SUCCESS) {
          ended = true;
          trailing = available_in != 0;
          return !trailing;
        }
        if (result == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) return true;
      }
    }
    if (ended) {
      trailing = !input.empty();
      return !trailing;
    }
    zlib.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input.data()));
    zlib.avail_in = static_cast<uInt>(input.size());
    for (;;) {
      zlib.next_out = reinterpret_cast<Bytef*>(buffer);
      zlib.avail_out = sizeof buffer;
      const int result = inflate(&zlib, Z_NO_FLUSH);
      if (result != Z_OK && result != Z_STREAM_END && result != Z_BUF_ERROR) return false;
      if (!append(buffer, sizeof buffer - zlib.avail_out, out, room, overflow)) return true;
      if (result == Z_STREAM_END) {
        ended = true;
        trailing = zlib.avail_in != 0;
        return !trailing;
      }
      if (zlib.avail_in == 0 && zlib.avail_out != 0) return true;
      if (result == Z_BUF_ERROR && zlib.avail_out != 0) return true;
    }
  }

  static bool append(const char* data, std::size_t size, std::string& out, std::size_t room,
                     bool& overflow) {
    if (size > room - std::min(room, out.size())) {
      overflow = true;
      return false;
    }
    out.append(data, size);
    return true;
  }
};

BodyDecoder::BodyDecoder(std::string_view encoding, std::size_t limit) : limit_(limit) {
  encoding = trimmed(encoding);
  name_ = std::string(encoding);
  if (encoding.empty() || equals_ignoring_case(encoding, "identity")) return;
  if (equals_ignoring_case(encoding, "gzip") || equals_ignoring_case(encoding, "x-gzip") ||
      equals_ignoring_case(encoding, "deflate"))
    inflater_ = std::make_unique<Inflater>(false);
  else if (equals_ignoring_case(encoding, "br"))
    inflater_ = std::make_unique<Inflater>(true);
  else
    throw std::invalid_argument("unsupported Content-Encoding \"" + name_ +
                                "\"; use gzip, deflate or br");
}

BodyDecoder::~BodyDecoder() = default;

BodyDecoder::State BodyDecoder::feed(std::string_view bytes) {
  if (state_ != State::Reading || bytes.empty()) return state_;
  received_ += bytes.size();
  if (!inflater_) {
    if (bytes.size() > limit_ - std::min(limit_, body_.size())) {
      state_ = State::TooLarge;
    } else {
      body_.append(bytes);
    }
  } else {
    bool overflow = false;
    if (!inflater_->run(bytes, body_, limit_, overflow)) {
      state_ = State::Corrupt;
      const std::string kind = inflater_->brotli                        ? "brotli"
                               : equals_ignoring_case(name_, "deflate") ? "zlib"
                                                                        : "gzip";
      problem_ = inflater_->trailing
                     ? "the " + name_ + " body goes on after the end of its compressed stream"
                     : "the " + name_ + " body is not valid " + kind + " data" +
                           (kind == "zlib" ? " (a raw deflate stream needs the zlib header)" : "");
    } else if (overflow)
      state_ = State::TooLarge;
  }
  if (state_ != State::Reading) body_ = std::string();
  return state_;
}

BodyDecoder::State BodyDecoder::finish() {
  if (state_ == State::Reading && inflater_ && !inflater_->ended) {
    // An empty body with an encoding header is an empty body; one cut short is not.
    if (received_ != 0) {
      state_ = State::Corrupt;
      problem_ = "the " + name_ + " body is cut short: its compressed stream does not end";
      body_ = std::string();
    }
  }
  return state_;
}

}  // namespace lathe::http
