// parse_generate_request: the JSON body of POST /v2/models/{name}/generate, every field checked
// and every error naming the field.
#include <gtest/gtest.h>

#include <string>

#include "src/serve/generate_request.h"

namespace lathe::serve {
namespace {

GenerateRequest parse_body(const std::string& body, GenerateLimits limits = {}) {
  return parse_generate_request(body, limits);
}

// The message of the RequestError parse throws, checked to be a 400.
std::string rejection_of(const std::string& body, GenerateLimits limits = {}) {
  try {
    parse_body(body, limits);
  } catch (const RequestError& e) {
    EXPECT_EQ(e.status(), 400) << e.what();
    return e.what();
  }
  return "(accepted)";
}

#define EXPECT_BODY_REJECTED(body, fragment)                                                  \
  do {                                                                                        \
    const std::string message_ = rejection_of(body);                                          \
    EXPECT_NE(message_.find(fragment), std::string::npos) << (body) << "\ngot: " << message_; \
  } while (0)

TEST(GenerateRequest, OnlyThePromptIsRequired) {
  const GenerateRequest r = parse_body(R"({"prompt":"The state"})");
  EXPECT_EQ(r.prompt, "The state");
  EXPECT_EQ(r.max_tokens, kDefaultGenerateTokens);
  EXPECT_EQ(r.temperature, 1.0);
  EXPECT_EQ(r.top_k, 0);
  EXPECT_EQ(r.seed, 0u);
  EXPECT_FALSE(r.stream);
}

TEST(GenerateRequest, ReadsEveryField) {
  const GenerateRequest r =
      parse_body(R"({"stream":true,"seed":18446744073709551615,"top_k":5,"temperature":0.25,)"
                 R"("max_tokens":4096,"prompt":"caf\u00e9 \ud834\udd1e"})");
  EXPECT_EQ(r.prompt, "caf\xC3\xA9 \xF0\x9D\x84\x9E");
  EXPECT_EQ(r.max_tokens, 4096);
  EXPECT_EQ(r.temperature, 0.25);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_EQ(r.seed, 18446744073709551615u);
  EXPECT_TRUE(r.stream);
  // Whole numbers written with a decimal point are integers; integers are numbers.
  const GenerateRequest whole =
      parse_body(R"({"prompt":"a","max_tokens":3.0,"top_k":1e1,"seed":-0,"temperature":2})");
  EXPECT_EQ(whole.max_tokens, 3);
  EXPECT_EQ(whole.top_k, 10);
  EXPECT_EQ(whole.seed, 0u);
  EXPECT_EQ(whole.temperature, 2.0);
  EXPECT_EQ(parse_body(R"({"prompt":"a","max_tokens":0,"temperature":0})").max_tokens, 0);
}

TEST(GenerateRequest, RejectsMissingAndEmptyPrompts) {
  EXPECT_BODY_REJECTED("{}", "the request has no \"prompt\"");
  EXPECT_BODY_REJECTED(R"({"max_tokens":5})", "no \"prompt\"");
  EXPECT_BODY_REJECTED(R"({"prompt":""})", "\"prompt\" is empty");
  EXPECT_BODY_REJECTED(R"({"prompt":null})", "\"prompt\" is null; expected a non-empty string");
  EXPECT_BODY_REJECTED(R"({"prompt":5})", "\"prompt\" is a number");
  EXPECT_BODY_REJECTED(R"({"prompt":["a"]})", "\"prompt\" is an array");
  EXPECT_BODY_REJECTED(R"({"prompt":{"text":"a"}})", "\"prompt\" is an object");
  GenerateLimits limits;
  limits.max_prompt_bytes = 4;
  EXPECT_EQ(parse_body(R"({"prompt":"abcd"})", limits).prompt, "abcd");
  EXPECT_NE(rejection_of(R"({"prompt":"abcde"})", limits).find("\"prompt\" is 5 bytes, more than"),
            std::string::npos);
}

TEST(GenerateRequest, RejectsValuesOutOfRangeNamingTheField) {
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_tokens":-1})",
                       "\"max_tokens\" is -1; expected an integer in [0, 4096]");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_tokens":4097})", "\"max_tokens\" is 4097");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_tokens":2.5})", "\"max_tokens\" is 2.5");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_tokens":1e30})", "\"max_tokens\" is 1e30");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_tokens":"10"})",
                       "\"max_tokens\" is a string; expected an integer");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","temperature":-0.5})",
                       "\"temperature\" is -0.5; expected a number >= 0");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","temperature":-1})", "\"temperature\" is -1");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","temperature":true})", "\"temperature\" is a boolean");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","top_k":-3})", "\"top_k\" is -3; expected an integer >= 0");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","top_k":1.5})", "\"top_k\" is 1.5");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","top_k":9223372036854775808})", "\"top_k\" is");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","seed":-1})",
                       "\"seed\" is -1; expected an integer in [0, ");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","seed":18446744073709551616})", "\"seed\" is");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","seed":0.5})", "\"seed\" is 0.5");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","stream":"yes"})",
                       "\"stream\" is a string; expected true or false");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","stream":1})", "\"stream\" is a number");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","stream":null})", "\"stream\" is null");
  // The server's limit is in the message.
  GenerateLimits limits;
  limits.max_tokens = 10;
  EXPECT_NE(rejection_of(R"({"prompt":"a","max_tokens":11})", limits).find("[0, 10]"),
            std::string::npos);
}

TEST(GenerateRequest, RejectsUnknownAndRepeatedFields) {
  EXPECT_BODY_REJECTED(R"({"prompt":"a","max_new_tokens":5})",
                       "unknown field \"max_new_tokens\"; a generate request has \"prompt\"");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","parameters":{}})", "unknown field \"parameters\"");
  EXPECT_BODY_REJECTED(R"({"prompt":"a","prompt":"b"})", "\"prompt\" appears twice");
  EXPECT_BODY_REJECTED(R"({"seed":1,"prompt":"a","seed":2})", "\"seed\" appears twice");
}

TEST(GenerateRequest, RejectsWhatIsNotOneJsonObject) {
  EXPECT_BODY_REJECTED("", "malformed JSON");
  EXPECT_BODY_REJECTED("{\"prompt\": ", "malformed JSON");
  EXPECT_BODY_REJECTED("{\"prompt\":\"a\"} x", "malformed JSON");
  EXPECT_BODY_REJECTED("[]", "the body is an array; a generate request is a JSON object");
  EXPECT_BODY_REJECTED("\"hello\"", "the body is a string");
  EXPECT_BODY_REJECTED("42", "the body is a number");
  EXPECT_BODY_REJECTED("null", "the body is null");
  // Invalid UTF-8 in a string is malformed JSON (the parser checks every string).
  EXPECT_BODY_REJECTED("{\"prompt\":\"a\xff\"}", "malformed JSON");
  // Nesting stops at the first bracket: no depth to exhaust.
  EXPECT_BODY_REJECTED(std::string(100000, '['), "the body is an array");
  EXPECT_BODY_REJECTED("{\"prompt\":" + std::string(100000, '['), "\"prompt\" is an array");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"prompt\":";
  EXPECT_BODY_REJECTED(objects, "\"prompt\" is an object");
}

}  // namespace
}  // namespace lathe::serve
