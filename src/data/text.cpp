// Text for language models: the character tokenizer (UTF-8 validated), rebuilding either
// tokenizer from its JSON, the corpus reader and the token stream. Byte-level BPE is in bpe.cpp.
#include "lathe/text.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <system_error>

#include <fmt/format.h>

#include "lathe/error.h"
#include "src/data/utf8.h"
#include "src/io/file_bytes.h"

namespace lathe {
namespace {

using detail::append_utf8;
using detail::decode_utf8;
using detail::is_continuation;
using detail::is_valid_code_point;
using detail::kMaxCodePoint;

// The most entries a tokenizer's JSON may list (characters or merges).
constexpr std::size_t kMaxJsonEntries = 1'000'000;

// A code point for a message: 'x' (U+0078), or just U+000A for control characters.
std::string describe_code_point(char32_t c) {
  const bool control = c < 0x20 || (c >= 0x7F && c < 0xA0);
  if (control) return fmt::format("U+{:04X}", static_cast<std::uint32_t>(c));
  std::string utf8;
  append_utf8(utf8, c);
  return fmt::format("'{}' (U+{:04X})", utf8, static_cast<std::uint32_t>(c));
}

// The value of an integer JSON field, or an Error naming the field; `low`..`high` inclusive.
std::int64_t json_integer(const nlohmann::json& value, const std::string& field, std::int64_t low,
                          std::int64_t high) {
  if (!value.is_number_integer())
    throw Error(fmt::format("{}: expected an integer, got {}", field, value.type_name()));
  if (value.is_number_unsigned()) {
    const auto u = value.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(high))
      throw Error(fmt::format("{}: {} is out of range [{}, {}]", field, u, low, high));
    return static_cast<std::int64_t>(u);
  }
  const auto v = value.get<std::int64_t>();
  if (v < low || v > high)
    throw Error(fmt::format("{}: {} is out of range [{}, {}]", field, v, low, high));
  return v;
}

const nlohmann::json& json_array(const nlohmann::json& object, const char* key,
                                 const std::string& field) {
  const auto found = object.find(key);
  if (found == object.end()) throw Error(fmt::format("{}: missing", field));
  if (!found->is_array())
    throw Error(fmt::format("{}: expected an array, got {}", field, found->type_name()));
  if (found->size() > kMaxJsonEntries)
    throw Error(fmt::format("{}: {} entries, more than the {} allowed", field, found->size(),
                            kMaxJsonEntries));
  return *found;
}

}  // namespace

std::string Tokenizer::decode(const std::vector<std::int64_t>& tokens) const {
  const std::int64_t vocabulary = vocab_size();
  std::string text;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocabulary)
      throw Error(
          fmt::format("tokens[{}]: token {} is out of range for the {} tokenizer's {} tokens", i,
                      tokens[i], kind(), vocabulary));
    text += token_bytes(tokens[i]);
  }
  return text;
}

namespace {

constexpr std::string_view kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD

// The length of the UTF-8 sequence a lead byte starts (1 for ASCII), or 0 for a byte that cannot
// start one (a continuation byte, C0, C1, F5..FF).
std::size_t sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether `byte` may follow the bytes of `prefix` (a valid, incomplete prefix): the second byte's
// range excludes overlong forms, surrogates and code points past U+10FFFF.
bool continues(std::string_view prefix, unsigned char byte) {
  if (prefix.size() > 1) return is_continuation(byte);
  const auto lead = static_cast<unsigned char>(prefix[0]);
  unsigned char low = 0x80, high = 0xBF;
  if (lead == 0xE0) low = 0xA0;
  if (lead == 0xED) high = 0x9F;
  if (lead == 0xF0) low = 0x90;
  if (lead == 0xF4) high = 0x8F;
  return byte >= low && byte <= high;
}

}  // namespace

std::string Utf8Stream::push(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() + pending_.size());
  for (const char c : bytes) {
    const auto byte = static_cast<unsigned char>(c);
    if (!pending_.empty()) {
      if (continues(pending_, byte)) {
        pending_ += c;
        if (pending_.size() == sequence_length(static_cast<unsigned char>(pending_[0]))) {
          out += pending_;
          pending_.clear();
        }
        continue;
      }
      // The sequence held back cannot complete: one U+FFFD for it, and this byte starts afresh.
      out += kReplacementCharacter;
      pending_.clear();
    }
    const std::size_t length = sequence_length(byte);
    if (length == 1)
      out += c;
    else if (length == 0)
      out += kReplacementCharacter;
    else
      pending_ += c;
  }
  return out;
}

std::string Utf8Stream::finish() {
  if (pending_.empty()) return {};
  pending_.clear();
  return std::string(kReplacementCharacter);
}

std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& json) {
  if (!json.is_object())
    throw Error(fmt::format("tokenizer: expected an object, got {}", json.type_name()));
  const auto kind = json.find("kind");
  if (kind == json.end()) throw Error("tokenizer.kind: missing");
  if (!kind->is_string())
    throw Error(fmt::format("tokenizer.kind: expected a string, got {}", kind->type_name()));
  const auto& name = kind->get_ref<const std::string&>();
  if (name == "char") {
    const auto& characters = json_array(json, "characters", "tokenizer.characters");
    std::vector<char32_t> code_points;
    code_points.reserve(characters.size());
    for (std::size_t i = 0; i < characters.size(); ++i) {
      const std::string field = fmt::format("tokenizer.characters[{}]", i);
      const auto c = json_integer(characters[i], field, 0, kMaxCodePoint);
      if (!is_valid_code_point(c))
        throw Error(fmt::format("{}: U+{:04X} is a surrogate, not a character", field, c));
      if (!code_points.empty() && static_cast<char32_t>(c) <= code_points.back())
        throw Error(
            fmt::format("{}: {} does not follow {}; the characters must be sorted and distinct",
                        field, c, static_cast<std::uint32_t>(code_points.back())));
      code_points.push_back(static_cast<char32_t>(c));
    }
    return std::make_unique<CharTokenizer>(std::move(code_points));
  }
  if (name == "bpe") {
    const auto& merges_json = json_array(json, "merges", "tokenizer.merges");
    std::vector<std::pair<std::int64_t, std::int64_t>> merges;
    merges.reserve(merges_json.size());
    for (std::size_t i = 0; i < merges_json.size(); ++i) {
      const std::string field = fmt::format("tokenizer.merges[{}]", i);
      const auto& pair = merges_json[i];
      if (!pair.is_array() || pair.size() != 2)
        throw Error(fmt::format("{}: expected a pair of token ids [a, b], got {}", field,
                                pair.is_array() ? fmt::format("{} entries", pair.size())
                                                : std::string(pair.type_name())));
      std::int64_t ids[2];
      for (std::size_t j = 0; j < 2; ++j) {
        ids[j] = json_integer(pair[j], fmt::format("{}[{}]", field, j), 0,
                              std::numeric_limits<std::int64_t>::max());
        // Token 256 + i is made from tokens that exist before it.
        const auto made = static_cast<std::int64_t>(256 + i);
        if (ids[j] >= made)
          throw Error(fmt::format(
              "{}: token {} does not exist yet; the merge makes token {} from earlier tokens "
              "(0..{})",
              field, ids[j], made, made - 1));
      }
      merges.emplace_back(ids[0], ids[1]);
    }
    try {
      return std::make_unique<BpeTokenizer>(std::move(merges));
    } catch (const Error& e) {
      throw Error(fmt::format("tokenizer.merges: {}", e.what()));
    }
  }
  throw Error(fmt::format("tokenizer.kind: \"{}\" is not a tokenizer kind (\"char\" or \"bpe\")",
                          name.size() > 40 ? name.substr(0, 40) + "..." : name));
}

CharTokenizer CharTokenizer::train(std::string_view text) {
  std::vector<bool> seen(kMaxCodePoint + 1, false);
  for (std::size_t offset = 0; offset < text.size();) {
    char32_t c = 0;
    offset += decode_utf8(text, offset, c);
    seen[c] = true;
  }
  std::vector<char32_t> code_points;
  for (char32_t c = 0; c <= kMaxCodePoint; ++c)
    if (seen[c]) code_points.push_back(c);
  return CharTokenizer(std::move(code_points));
}

CharTokenizer::CharTokenizer(std::vector<char32_t> code_points)
    : code_points_(std::move(code_points)) {
  for (std::size_t i = 0; i < code_points_.size(); ++i) {
    const char32_t c = code_points_[i];
    if (!is_valid_code_point(c))
      throw Error(
          fmt::format("character tokenizer: entry {} (U+{:04X}) is not a Unicode scalar "
                      "value (a surrogate or past U+10FFFF)",
                      i, static_cast<std::uint32_t>(c)));
    if (i > 0 && c <= code_points_[i - 1])
      throw Error(fmt::format(
          "character tokenizer: entry {} (U+{:04X}) does not follow U+{:04X}; the code points "
          "must be sorted and distinct",
          i, static_cast<std::uint32_t>(c), static_cast<std::uint32_t>(code_points_[i - 1])));
  }
}

std::int64_t CharTokenizer::vocab_size() const {
  return static_cast<std::int64_t>(code_points_.size());
}

std::vector<std::int64_t> CharTokenizer::encode(std::string_view text) const {
  std::vector<std::int64_t> tokens;
  tokens.reserve(text.size());
  for (std::size_t offset = 0; offset < text.size();) {
    char32_t c = 0;
    const std::size_t length = decode_utf8(text, offset, c);
    const auto found = std::lower_bound(code_points_.begin(), code_points_.end(), c);
    if (found == code_points_.end() || *found != c)
      throw Error(fmt::format(
          "character {} at byte offset {} is not in the tokenizer's vocabulary of {} characters",
          describe_code_point(c), offset, code_points_.size()));
    tokens.push_back(found - code_points_.begin());
    offset += length;
  }
  return tokens;
}

std::string CharTokenizer::token_bytes(std::int64_t token) const {
  if (token < 0 || token >= vocab_size())
    throw Error(fmt::format("token {} is out of range for the char tokenizer's {} tokens", token,
                            vocab_size()));
  std::string bytes;
  append_utf8(bytes, code_points_[static_cast<std::size_t>(token)]);
  return bytes;
}

nlohmann::json CharTokenizer::to_json() const {
  auto characters = nlohmann::json::array();
  for (char32_t c : code_points_) characters.push_back(static_cast<std::uint32_t>(c));
  return {{"kind", "char"}, {"characters", std::move(characters)}};
}

std::string read_text_corpus(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  std::error_code error;
  const auto status = fs::status(path, error);
  if (status.type() == fs::file_type::not_found)
    throw Error(
        fmt::format("{}: cannot read the text corpus: no such file or directory", path.string()));
  if (error)
    throw Error(fmt::format("{}: cannot read the text corpus: {}", path.string(), error.message()));
  if (!fs::is_directory(status)) {
    const auto bytes = detail::read_raw_file(path);
    return std::string(detail::as_chars(bytes));
  }
  std::vector<fs::path> files;
  fs::directory_iterator entries(path, error);
  if (error)
    throw Error(fmt::format("{}: cannot list the directory: {}", path.string(), error.message()));
  for (const auto& entry : entries) {
    const auto& file = entry.path();
    if (file.extension() == ".txt" && entry.is_regular_file(error)) files.push_back(file);
  }
  if (files.empty())
    throw Error(fmt::format("{}: the directory holds no .txt files", path.string()));
  std::sort(files.begin(), files.end(),
            [](const fs::path& a, const fs::path& b) { return a.filename() < b.filename(); });
  std::string text;
  for (const auto& file : files) {
    const auto bytes = detail::read_raw_file(file);
    if (bytes.size() > detail::kMaxFileBytes - text.size())
      throw Error(fmt::format("{}: the .txt files hold more than {} bytes together", path.string(),
                              detail::kMaxFileBytes));
    text += detail::as_chars(bytes);
  }
  return text;
}

TokenStream::TokenStream(std::vector<std::int64_t> tokens, double validation_fraction)
    : tokens_(std::move(tokens)) {
  if (!(validation_fraction >= 0.0 && validation_fraction < 1.0))
    throw Error(
        fmt::format("token stream: validation_fraction {} is not in [0, 1)", validation_fraction));
  // As Python's int(0.9 * n): truncation of the same double product.
  train_size_ =
      static_cast<std::int64_t>(static_cast<double>(tokens_.size()) * (1.0 - validation_fraction));
  train_size_ = std::clamp<std::int64_t>(train_size_, 0, static_cast<std::int64_t>(tokens_.size()));
}

std::int64_t TokenStream::size(Split split) const {
  return split == Split::Train ? train_size_
                               : static_cast<std::int64_t>(tokens_.size()) - train_size_;
}

std::pair<Tensor, Tensor> TokenStream::sample(Split split, std::int64_t batch, std::int64_t block,
                                              Generator& generator, std::int64_t row_begin,
                                              std::int64_t row_end) const {
  const char* name = split == Split::Train ? "training" : "validation";
  if (batch < 1 || block < 1)
    throw Error(
        fmt::format("token stream: batch ({}) and block ({}) must be at least 1", batch, block));
  const std::int64_t length = size(split);
  if (length <= block + 1)
    throw Error(fmt::format(
        "token stream: the {} split has {} tokens, too few for windows of block {} (it needs more "
        "than block + 1 = {})",
        name, length, block, block + 1));
  if (batch > std::numeric_limits<std::int64_t>::max() / block)
    throw Error(fmt::format("token stream: batch {} x block {} is too large", batch, block));
  if (row_end < 0) row_end = batch;
  if (row_begin < 0 || row_begin > row_end || row_end > batch)
    throw Error(fmt::format("token stream: rows [{}, {}) are not rows of a batch of {}", row_begin,
                            row_end, batch));
  const std::int64_t first = split == Split::Train ? 0 : train_size_;
  auto inputs = Tensor::empty({row_end - row_begin, block}, DType::Int64);
  auto targets = Tensor::empty({row_end - row_begin, block}, DType::Int64);
  auto* in = inputs.data<std::int64_t>();
  auto* out = targets.data<std::int64_t>();
  const auto starts = static_cast<std::uint64_t>(length - block - 1);
  for (std::int64_t b = 0; b < batch; ++b) {
    const auto start = first + static_cast<std::int64_t>(generator.below(starts));
    if (b < row_begin || b >= row_end) continue;  // another process's rows: drawn, not copied
    const auto* window = tokens_.data() + start;
    std::copy(window, window + block, in + (b - row_begin) * block);
    std::copy(window + 1, window + block + 1, out + (b - row_begin) * block);
  }
  return {std::move(inputs), std::move(targets)};
}

namespace {

// Evaluation passes draw from streams seeded by (seed, pass, split): the same windows at the same
// step of any run.
constexpr std::uint64_t kEvaluationStream = 0x9e3779b97f4a7c15ULL;

}  // namespace

TokenWindows::TokenWindows(std::shared_ptr<const TokenStream> tokens, TokenStream::Split split,
                           Options options)
    : tokens_(std::move(tokens)), split_(split), options_(options), generator_(options.seed) {
  if (options_.batch_size < 1 || options_.block_size < 1 || options_.batches_per_pass < 0)
    throw Error(fmt::format("token windows: batch_size {} and block_size {} must be at least 1",
                            options_.batch_size, options_.block_size));
  if (options_.shard_count < 1 || options_.shard_index < 0 ||
      options_.shard_index >= options_.shard_count)
    throw Error(fmt::format("token windows: shard {} of {} does not exist", options_.shard_index,
                            options_.shard_count));
  const std::int64_t needed = options_.block_size + 2;
  if (tokens_->size(split_) < needed)
    throw Error(fmt::format("the {} split has {} tokens; windows of block_size {} need at least {}",
                            split_ == TokenStream::Split::Train ? "training" : "validation",
                            tokens_->size(split_), options_.block_size, needed));
}

void TokenWindows::start_epoch(std::int64_t pass) {
  drawn_ = 0;
  if (options_.batches_per_pass == 0) return;  // training: one stream for the whole run
  const std::uint64_t split = split_ == TokenStream::Split::Train ? 1 : 0;
  generator_ = Generator(options_.seed ^
                         (kEvaluationStream * static_cast<std::uint64_t>(2 * pass + 1 + split)));
}

std::optional<Batch> TokenWindows::next() {
  if (options_.batches_per_pass > 0 && drawn_ >= options_.batches_per_pass) return std::nullopt;
  ++drawn_;
  const std::int64_t rows = options_.batch_size;
  const std::int64_t begin = rows * options_.shard_index / options_.shard_count;
  const std::int64_t end = rows * (options_.shard_index + 1) / options_.shard_count;
  auto [inputs, targets] =
      tokens_->sample(split_, rows, options_.block_size, generator_, begin, end);
  return Batch{std::move(inputs), std::move(targets)};
}

nlohmann::json TokenWindows::state() const {
  if (options_.batches_per_pass > 0) return nullptr;  // evaluation: (seed, pass) say it all
  return generator_.state_json();
}

void TokenWindows::load_state(const nlohmann::json& state) {
  if (options_.batches_per_pass > 0) return BatchSource::load_state(state);
  generator_.set_state_json(state);
}

}  // namespace lathe
