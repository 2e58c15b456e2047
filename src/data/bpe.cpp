// Byte-level BPE as GPT-2 (and Karpathy's minbpe): text is split into chunks with a hand-written
// approximation of GPT-2's pre-tokenizer regex, and merges are learned and applied within chunks.
//
// Training counts the distinct chunks first (a corpus of millions of words has tens of thousands
// of distinct ones), then keeps the pair counts up to date incrementally: each merge rewrites
// only the chunks that hold the merged pair (found through an index pair -> chunks) and a lazy
// max-heap yields the most frequent pair, ties broken by the smallest (first, second) ids.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "lathe/error.h"
#include "lathe/text.h"

namespace lathe {
namespace {

constexpr std::int64_t kMaxVocabSize = 1'000'000;
// Limits on the bytes tokens spell out: merges of a token with itself double its length, so a few
// dozen hostile merges would otherwise ask for terabytes. Real tokens are a word or less.
constexpr std::size_t kMaxTokenBytes = std::size_t{1} << 20;
constexpr std::size_t kMaxTotalTokenBytes = std::size_t{256} << 20;
// Chunks up to this length are encoded once per encode() call and then reused.
constexpr std::size_t kMaxCachedChunk = 256;

enum class ByteClass : std::uint8_t { Letter, Digit, Space, Other };

constexpr ByteClass byte_class(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80) return ByteClass::Letter;
  if (c >= '0' && c <= '9') return ByteClass::Digit;
  if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f')
    return ByteClass::Space;
  return ByteClass::Other;
}

// The length of a contraction ('s 't 'm 'd 're 've 'll) at `pos`, or 0.
std::size_t contraction_length(std::string_view text, std::size_t pos) {
  if (text[pos] != '\'' || pos + 1 >= text.size()) return 0;
  const char c = text[pos + 1];
  if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
  if (pos + 2 < text.size()) {
    const char d = text[pos + 2];
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
  }
  return 0;
}

// Calls `emit(chunk)` for each chunk of `text`, in order; the chunks concatenate to the text. As
// GPT-2's pattern  's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with ASCII letters and every byte >= 0x80 (so every non-ASCII character) as letters, ASCII
// digits as numbers and ASCII whitespace as spaces.
template <class Emit>
void for_each_chunk(std::string_view text, Emit&& emit) {
  const std::size_t n = text.size();
  const auto cls = [&](std::size_t i) { return byte_class(static_cast<unsigned char>(text[i])); };
  std::size_t pos = 0;
  while (pos < n) {
    std::size_t begin = pos;
    if (const std::size_t length = contraction_length(text, pos)) {
      emit(text.substr(pos, length));
      pos += length;
      continue;
    }
    if (cls(pos) == ByteClass::Space) {
      std::size_t end = pos;
      while (end < n && cls(end) == ByteClass::Space) ++end;
      if (end == n) {  // trailing whitespace is one chunk
        emit(text.substr(pos, end - pos));
        pos = end;
        continue;
      }
      // \s+(?!\S): all but the last whitespace character before the next word...
      if (end - pos > 1) {
        emit(text.substr(pos, end - 1 - pos));
        pos = end - 1;
      }
      // ...which, when it is a space, starts that word; any other whitespace stands alone.
      if (text[pos] != ' ') {
        emit(text.substr(pos, 1));
        ++pos;
        continue;
      }
      begin = pos++;  // the optional leading space of the run below
    }
    const ByteClass run = cls(pos);
    while (pos < n && cls(pos) == run) ++pos;
    emit(text.substr(begin, pos - begin));
  }
}

std::uint64_t pair_key(std::int32_t a, std::int32_t b) {
  return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(a)) << 32) |
         static_cast<std::uint32_t>(b);
}
std::int32_t key_first(std::uint64_t key) {
  return static_cast<std::int32_t>(key >> 32);
}
std::int32_t key_second(std::uint64_t key) {
  return static_cast<std::int32_t>(key & 0xFFFFFFFF);
}

// Merges every occurrence of (a, b) in `tokens`, left to right, into `merged`; returns whether
// there was one.
bool merge_pair(std::vector<std::int32_t>& tokens, std::int32_t a, std::int32_t b,
                std::int32_t merged) {
  std::size_t out = 0;
  bool found = false;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (i + 1 < tokens.size() && tokens[i] == a && tokens[i + 1] == b) {
      tokens[out++] = merged;
      ++i;
      found = true;
    } else {
      tokens[out++] = tokens[i];
    }
  }
  tokens.resize(out);
  return found;
}

struct Candidate {
  std::int64_t count;
  std::uint64_t key;
};
// The heap's top is the most frequent pair; ties go to the smallest (first, second) ids.
struct LowerPriority {
  bool operator()(const Candidate& x, const Candidate& y) const {
    return x.count != y.count ? x.count < y.count : x.key > y.key;
  }
};

class Trainer {
 public:
  explicit Trainer(std::string_view text) {
    std::unordered_map<std::string_view, std::int64_t> counts;
    for_each_chunk(text, [&](std::string_view chunk) {
      if (chunk.size() >= 2) ++counts[chunk];  // a single byte holds no pair
    });
    if (counts.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max()))
      throw Error(
          fmt::format("BPE: {} distinct chunks are more than training can index", counts.size()));
    // Chunks in byte order, so nothing depends on the hash map's iteration order.
    std::vector<std::pair<std::string_view, std::int64_t>> distinct(counts.begin(), counts.end());
    std::sort(distinct.begin(), distinct.end());
    chunks_.reserve(distinct.size());
    for (const auto& [chunk, count] : distinct) {
      Chunk c;
      c.tokens.assign(chunk.begin(), chunk.end());
      for (auto& t : c.tokens) t &= 0xFF;  // char may be signed
      c.count = count;
      chunks_.push_back(std::move(c));
    }
    for (std::size_t c = 0; c < chunks_.size(); ++c) add_pairs(static_cast<std::int32_t>(c), -1);
    for (const auto& [key, count] : pair_counts_) heap_.push({count, key});
  }

  std::vector<std::pair<std::int64_t, std::int64_t>> run(std::int64_t merges) {
    std::vector<std::pair<std::int64_t, std::int64_t>> result;
    for (std::int64_t m = 0; m < merges; ++m) {
      const auto best = pop_best();
      if (!best) break;
      const std::int32_t a = key_first(*best), b = key_second(*best);
      merge(a, b, static_cast<std::int32_t>(256 + m));
      result.emplace_back(a, b);
    }
    return result;
  }

 private:
  struct Chunk {
    std::vector<std::int32_t> tokens;
    std::int64_t count = 0;
  };

  // The most frequent pair if it occurs at least twice.
  std::optional<std::uint64_t> pop_best() {
    while (!heap_.empty()) {
      const Candidate top = heap_.top();
      heap_.pop();
      const auto found = pair_counts_.find(top.key);
      if (found == pair_counts_.end() || found->second != top.count) continue;  // stale
      if (top.count < 2) return std::nullopt;
      return top.key;
    }
    return std::nullopt;
  }

  // Counts the pairs of chunk c. Only pairs with token `merged` (all of them when -1) are new to
  // the chunk: a merge makes no other pair adjacent, so the index lists c for the rest already.
  void add_pairs(std::int32_t c, std::int32_t merged) {
    const Chunk& chunk = chunks_[static_cast<std::size_t>(c)];
    for (std::size_t i = 0; i + 1 < chunk.tokens.size(); ++i) {
      const std::int32_t first = chunk.tokens[i], second = chunk.tokens[i + 1];
      const auto key = pair_key(first, second);
      pair_counts_[key] += chunk.count;
      touched_.push_back(key);
      if (merged < 0 || first == merged || second == merged) {
        auto& holders = index_[key];
        if (holders.empty() || holders.back() != c) holders.push_back(c);
      }
    }
  }

  void remove_pairs(std::int32_t c) {
    const Chunk& chunk = chunks_[static_cast<std::size_t>(c)];
    for (std::size_t i = 0; i + 1 < chunk.tokens.size(); ++i) {
      const auto key = pair_key(chunk.tokens[i], chunk.tokens[i + 1]);
      const auto found = pair_counts_.find(key);
      found->second -= chunk.count;
      if (found->second == 0) pair_counts_.erase(found);
      touched_.push_back(key);
    }
  }

  void merge(std::int32_t a, std::int32_t b, std::int32_t merged) {
    const auto key = pair_key(a, b);
    const auto holders_entry = index_.find(key);
    std::vector<std::int32_t> holders = std::move(holders_entry->second);
    index_.erase(holders_entry);
    touched_.clear();
    for (const std::int32_t c : holders) {
      auto& tokens = chunks_[static_cast<std::size_t>(c)].tokens;
      std::vector<std::int32_t> rewritten = tokens;
      // The index may list chunks that have lost the pair to an earlier merge.
      if (!merge_pair(rewritten, a, b, merged)) continue;
      remove_pairs(c);
      tokens = std::move(rewritten);
      add_pairs(c, merged);
    }
    // Every pair whose count changed goes on the heap with its new count; old entries go stale.
    std::sort(touched_.begin(), touched_.end());
    touched_.erase(std::unique(touched_.begin(), touched_.end()), touched_.end());
    // A pair that no chunk holds any more never comes back (a merge only makes pairs with the
    // new token), so its index entry goes.
    for (const auto touched : touched_) {
      const auto found = pair_counts_.find(touched);
      if (found != pair_counts_.end())
        heap_.push({found->second, touched});
      else
        index_.erase(touched);
    }
  }

  std::vector<Chunk> chunks_;
  std::unordered_map<std::uint64_t, std::int64_t> pair_counts_;
  std::unordered_map<std::uint64_t, std::vector<std::int32_t>> index_;
  std::priority_queue<Candidate, std::vector<Candidate>, LowerPriority> heap_;
  std::vector<std::uint64_t> touched_;
};

}  // namespace

BpeTokenizer BpeTokenizer::train(std::string_view text, std::int64_t vocab_size) {
  if (vocab_size < 256 || vocab_size > kMaxVocabSize)
    throw Error(
        fmt::format("BPE: vocab_size {} is out of range: it must be at least 256 (the "
                    "bytes) and at most {}",
                    vocab_size, kMaxVocabSize));
  if (vocab_size == 256) return BpeTokenizer({});
  return BpeTokenizer(Trainer(text).run(vocab_size - 256));
}

BpeTokenizer::BpeTokenizer(std::vector<std::pair<std::int64_t, std::int64_t>> merges)
    : merges_(std::move(merges)) {
  if (static_cast<std::int64_t>(merges_.size()) > kMaxVocabSize - 256)
    throw Error(fmt::format("BPE: {} merges, more than the {} allowed", merges_.size(),
                            kMaxVocabSize - 256));
  token_bytes_.reserve(256 + merges_.size());
  for (int byte = 0; byte < 256; ++byte) token_bytes_.emplace_back(1, static_cast<char>(byte));
  std::size_t total = 256;
  std::unordered_map<std::uint64_t, std::size_t> seen;
  for (std::size_t i = 0; i < merges_.size(); ++i) {
    const auto [a, b] = merges_[i];
    const auto made = static_cast<std::int64_t>(256 + i);
    if (a < 0 || a >= made || b < 0 || b >= made)
      throw Error(fmt::format(
          "merges[{}] ({}, {}): a merge may only join earlier tokens (0..{}) into token {}", i, a,
          b, made - 1, made));
    const auto [earlier, inserted] =
        seen.try_emplace(pair_key(static_cast<std::int32_t>(a), static_cast<std::int32_t>(b)), i);
    if (!inserted)
      throw Error(fmt::format("merges[{}] ({}, {}) repeats merges[{}]", i, a, b, earlier->second));
    const auto& left = token_bytes_[static_cast<std::size_t>(a)];
    const auto& right = token_bytes_[static_cast<std::size_t>(b)];
    if (left.size() + right.size() > kMaxTokenBytes)
      throw Error(fmt::format(
          "merges[{}] ({}, {}): token {} would spell out {} bytes, more than the {} a token may "
          "hold",
          i, a, b, made, left.size() + right.size(), kMaxTokenBytes));
    total += left.size() + right.size();
    if (total > kMaxTotalTokenBytes)
      throw Error(
          fmt::format("merges[{}] ({}, {}): the tokens would spell out more than {} bytes together",
                      i, a, b, kMaxTotalTokenBytes));
    token_bytes_.push_back(left + right);
  }
}

std::int64_t BpeTokenizer::vocab_size() const {
  return static_cast<std::int64_t>(token_bytes_.size());
}

std::vector<std::int64_t> BpeTokenizer::encode(std::string_view text) const {
  // rank[(a, b)] = the token the pair merges into; lower tokens merge first.
  std::unordered_map<std::uint64_t, std::int32_t> rank;
  rank.reserve(merges_.size());
  for (std::size_t i = 0; i < merges_.size(); ++i)
    rank.emplace(pair_key(static_cast<std::int32_t>(merges_[i].first),
                          static_cast<std::int32_t>(merges_[i].second)),
                 static_cast<std::int32_t>(256 + i));

  std::vector<std::int64_t> tokens;
  tokens.reserve(text.size() / 2);
  // chunk -> where its tokens start in `tokens` and how many there are (the first occurrence).
  std::unordered_map<std::string_view, std::pair<std::size_t, std::size_t>> cache;
  std::vector<std::int32_t> ids;
  for_each_chunk(text, [&](std::string_view chunk) {
    const bool cacheable = chunk.size() <= kMaxCachedChunk;
    if (cacheable) {
      const auto found = cache.find(chunk);
      if (found != cache.end()) {
        const auto [start, count] = found->second;
        const std::size_t end = tokens.size();
        tokens.resize(end + count);
        std::copy_n(tokens.begin() + static_cast<std::ptrdiff_t>(start), count,
                    tokens.begin() + static_cast<std::ptrdiff_t>(end));
        return;
      }
    }
    ids.assign(chunk.begin(), chunk.end());
    for (auto& t : ids) t &= 0xFF;
    // Apply the earliest-learned merge present until none is: merges apply in rank order, and a
    // merge never creates a pair of lower rank (it holds the newer token).
    while (ids.size() >= 2 && !rank.empty()) {
      std::int32_t best = std::numeric_limits<std::int32_t>::max();
      std::size_t at = 0;
      for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
        const auto found = rank.find(pair_key(ids[i], ids[i + 1]));
        if (found != rank.end() && found->second < best) {
          best = found->second;
          at = i;
        }
      }
      if (best == std::numeric_limits<std::int32_t>::max()) break;
      merge_pair(ids, ids[at], ids[at + 1], best);
    }
    if (cacheable) cache.emplace(chunk, std::make_pair(tokens.size(), ids.size()));
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  });
  return tokens;
}

std::string BpeTokenizer::token_bytes(std::int64_t token) const {
  if (token < 0 || token >= vocab_size())
    throw Error(fmt::format("token {} is out of range for the bpe tokenizer's {} tokens", token,
                            vocab_size()));
  return token_bytes_[static_cast<std::size_t>(token)];
}

nlohmann::json BpeTokenizer::to_json() const {
  auto merges = nlohmann::json::array();
  for (const auto& [a, b] : merges_) merges.push_back({a, b});
  return {{"kind", "bpe"}, {"merges", std::move(merges)}};
}

}  // namespace lathe
