#pragma once
// The body of POST /v2/models/{name}/generate (text generation from a language-model bundle),
// parsed and checked in one pass. A pure function of its inputs, like parse_infer_request: no
// I/O, no globals, so a fuzz target can call it directly.
#include <cstdint>
#include <string>
#include <string_view>

#include "src/serve/infer_request.h"

namespace lathe::serve {

inline constexpr std::int64_t kDefaultGenerateTokens = 100;

struct GenerateRequest {
  std::string prompt;  // non-empty, valid UTF-8 (the JSON parser checks strings)
  std::int64_t max_tokens = kDefaultGenerateTokens;
  double temperature = 1.0;  // 0: always the most likely token
  std::int64_t top_k = 0;    // 0: every token
  std::uint64_t seed = 0;
  bool stream = false;  // Server-Sent Events, one per token
};

struct GenerateLimits {
  std::int64_t max_tokens = 4096;           // the most "max_tokens" may ask for
  std::int64_t max_prompt_bytes = 1 << 24;  // longer prompts are refused
};

// The body is one JSON object with the fields of GenerateRequest (only "prompt" is required).
// Unknown fields, fields given twice, wrong types and values out of range throw RequestError
// (400) with a message that names the field. Integer fields take whole numbers written as 3.0
// too.
GenerateRequest parse_generate_request(std::string_view body, const GenerateLimits& limits);

}  // namespace lathe::serve
