// InferenceServer with language-model bundles: POST /v2/models/{name}/generate in one answer and
// as Server-Sent Events, against generate() called directly; validation, the infer/generate
// mix-ups, metadata, metrics, authentication, limits, timeouts, a client that goes away mid-stream
// and hot reload. The bundles are tiny GPTs written by the tests.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "lathe/lathe.h"
#include "lathe/serve.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::TempDir;
using namespace std::chrono_literals;

constexpr const char* kCorpus = "the state of the union is strong. we the people.\n";

// A one-layer GPT with random weights (`seed`) over the characters of kCorpus.
void write_char_gpt(const std::filesystem::path& path, std::uint64_t seed) {
  const CharTokenizer tokenizer = CharTokenizer::train(kCorpus);
  GPTConfig config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 16;
  config.vocab_size = tokenizer.vocab_size();
  Generator init(seed);
  GPT model(config, init);
  model.eval();
  save_language_model(path, model, tokenizer, {{"validation_loss", 2.5}});
}

// The same with a byte-level BPE tokenizer: random weights sample any byte, so the text holds
// characters split across tokens and bytes that are not UTF-8 at all.
void write_bpe_gpt(const std::filesystem::path& path) {
  const BpeTokenizer tokenizer = BpeTokenizer::train(
      "caf\xC3\xA9 caf\xC3\xA9 na\xC3\xAFve na\xC3\xAFve \xE2\x9C\x93\xE2\x9C\x93 the the", 270);
  GPTConfig config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 16;
  config.block_size = 8;
  config.vocab_size = tokenizer.vocab_size();
  Generator init(5);
  GPT model(config, init);
  save_language_model(path, model, tokenizer, {});
}

void write_tiny_classifier(const std::filesystem::path& path) {
  Generator init(3);
  auto model = make_sequential(json::array({{{"type", "linear"}, {"in", 4}, {"out", 2}}}), init);
  model->eval();
  save_bundle(path, *model,
              {model->spec(),
               Preprocessing::none(),
               {{"task", "classification"}, {"input_shape", {4}}, {"classes", {"a", "b"}}},
               {}});
}

using lathe::testing::contains;

using lathe::testing::eventually;

// The events of a text/event-stream body: each "data: JSON" followed by a blank line.
std::vector<json> sse_events(const std::string& body) {
  std::vector<json> events;
  std::size_t position = 0;
  while (position < body.size()) {
    const std::size_t end = body.find("\n\n", position);
    if (end == std::string::npos) {
      ADD_FAILURE() << "an event without its blank line: " << body.substr(position);
      break;
    }
    const std::string event = body.substr(position, end - position);
    EXPECT_EQ(event.rfind("data: ", 0), 0u) << event;
    events.push_back(json::parse(event.substr(6)));
    position = end + 2;
  }
  return events;
}

// What generate() gives for the same request, decoded.
std::string expected_text(const std::filesystem::path& bundle, const std::string& prompt,
                          std::int64_t tokens, SamplingOptions sampling) {
  const LanguageModel lm = load_language_model(bundle);
  return lm.tokenizer->decode(generate(*lm.model, lm.tokenizer->encode(prompt), tokens, sampling));
}

class GenerateServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    write_char_gpt(lm_path(), 1);
    write_tiny_classifier(dir_.path() / "tiny.safetensors");
  }

  std::filesystem::path lm_path() const { return dir_.path() / "lm.safetensors"; }

  void start(ServeOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.log = [this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      log_ += std::string(line) + "\n";
    };
    server_ = std::make_unique<InferenceServer>(
        std::vector<ServedBundle>{{"lm", lm_path()}, {"tiny", dir_.path() / "tiny.safetensors"}},
        options);
    port_ = server_->start();
    ASSERT_GT(port_, 0);
    server_->load_models();
  }

  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_connection_timeout(30);
    c->set_read_timeout(120);
    c->set_write_timeout(60);
    return c;
  }

  httplib::Result post_generate(const json& body, const std::string& model = "lm",
                                const httplib::Headers& headers = {}) const {
    return post_raw(body.dump(), model, headers);
  }
  httplib::Result post_raw(const std::string& body, const std::string& model = "lm",
                           const httplib::Headers& headers = {}) const {
    return client()->Post(("/v2/models/" + model + "/generate").c_str(), headers, body,
                          "application/json");
  }

  // The 200 answer of a non-streaming request, parsed.
  json generated(const json& body) const {
    auto res = post_generate(body);
    EXPECT_TRUE(res) << httplib::to_string(res.error());
    if (!res) return json();
    EXPECT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    return json::parse(res->body);
  }

  static void expect_error(const httplib::Result& res, int status, const std::string& fragment) {
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, status) << res->body;
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << res->body;
    EXPECT_TRUE(contains(body["error"].get<std::string>(), fragment))
        << "error: " << body["error"] << "\nexpected to contain: " << fragment;
  }

  std::string log() {
    std::lock_guard lock(log_mutex_);
    return log_;
  }

  TempDir dir_;
  std::mutex log_mutex_;
  std::string log_;
  std::unique_ptr<InferenceServer> server_;
  int port_ = 0;
};

TEST_F(GenerateServeTest, MetadataSaysItIsALanguageModel) {
  start();
  auto res = client()->Get("/v2/models/lm");
  ASSERT_EQ(res->status, 200) << res->body;
  const json metadata = json::parse(res->body);
  EXPECT_EQ(metadata["name"], "lm");
  EXPECT_EQ(metadata["versions"], json({"1"}));
  EXPECT_EQ(metadata["inputs"],
            json::parse(R"([{"name":"prompt","datatype":"BYTES","shape":[1]}])"));
  EXPECT_EQ(metadata["outputs"],
            json::parse(R"([{"name":"text","datatype":"BYTES","shape":[1]}])"));
  const json& p = metadata["parameters"];
  EXPECT_EQ(p["task"], "language_model");
  EXPECT_EQ(p["endpoint"], "generate");
  EXPECT_EQ(p["tokenizer"], "char");
  EXPECT_EQ(p["vocab_size"], CharTokenizer::train(kCorpus).vocab_size());
  EXPECT_EQ(p["block_size"], 16);
  EXPECT_EQ(p["n_layer"], 1);
  EXPECT_EQ(p["parameter_count"], load_language_model(lm_path()).model->parameter_count());
  EXPECT_EQ(client()->Get("/v2/models/lm/ready")->status, 200);
  EXPECT_TRUE(contains(log(), "model 'lm' version 1 loaded")) << log();
  EXPECT_EQ(p["context_size"], 16);
  EXPECT_EQ(p["architecture"], "gpt");
  EXPECT_TRUE(contains(log(), "language model (gpt), ")) << log();
  EXPECT_TRUE(contains(log(), " parameters, context 16, char tokenizer")) << log();
}

TEST_F(GenerateServeTest, GeneratesMaxTokensDeterministicallyForASeed) {
  start();
  const json request = {{"prompt", "the state of the union is"}, {"max_tokens", 30}, {"seed", 7}};
  const json first = generated(request);
  EXPECT_EQ(first["model_name"], "lm");
  EXPECT_EQ(first["model_version"], "1");
  EXPECT_EQ(first["tokens"], 30);
  EXPECT_EQ(first["finish_reason"], "length");
  const std::string text = first["text"];
  // The prompt (longer than the 16-token context) is not echoed; one character per token.
  EXPECT_EQ(text, expected_text(lm_path(), "the state of the union is", 30, {1.0, 0, 7}));
  EXPECT_EQ(generated(request)["text"], text);
  json other = request;
  other["seed"] = 8;
  EXPECT_NE(generated(other)["text"], text);

  // Temperature and top_k reach the sampler.
  const json greedy = generated({{"prompt", "we"}, {"max_tokens", 12}, {"temperature", 0}});
  EXPECT_EQ(greedy["text"], expected_text(lm_path(), "we", 12, {0.0, 0, 0}));
  const json top =
      generated({{"prompt", "we"}, {"max_tokens", 12}, {"top_k", 2}, {"temperature", 0.5}});
  EXPECT_EQ(top["text"], expected_text(lm_path(), "we", 12, {0.5, 2, 0}));
  const json none = generated({{"prompt", "we"}, {"max_tokens", 0}});
  EXPECT_EQ(none["text"], "");
  EXPECT_EQ(none["tokens"], 0);
  // The default is 100 tokens.
  EXPECT_EQ(generated({{"prompt", "we"}})["tokens"], 100);

  const ModelCounters counters = server_->counters("lm");
  EXPECT_EQ(counters.generate_success_count, 7);
  EXPECT_EQ(counters.generated_tokens, 30 * 3 + 12 * 2 + 100);
  const std::string metrics = server_->metrics_text();
  EXPECT_TRUE(contains(metrics, "lathe_generate_request_success_total{model=\"lm\"} 7\n"));
  EXPECT_TRUE(contains(metrics, "lathe_generated_tokens_total{model=\"lm\"} 214\n"));
  EXPECT_TRUE(eventually([this] {
    return contains(server_->metrics_text(),
                    "lathe_http_requests_total{endpoint=\"generate\",code=\"200\"} 7\n");
  })) << server_->metrics_text();
}

TEST_F(GenerateServeTest, StreamsOneEventPerTokenThatAddUpToTheSameText) {
  start();
  const json request = {{"prompt", "the union"}, {"max_tokens", 25}, {"seed", 3}};
  const std::string text = generated(request)["text"];
  json streaming = request;
  streaming["stream"] = true;
  auto res = post_generate(streaming);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(res->get_header_value("Content-Type"), "text/event-stream");
  EXPECT_EQ(res->get_header_value("Cache-Control"), "no-cache");
  const std::vector<json> events = sse_events(res->body);
  ASSERT_EQ(events.size(), 26u) << res->body;
  const LanguageModel lm = load_language_model(lm_path());
  const std::vector<std::int64_t> tokens =
      generate(*lm.model, lm.tokenizer->encode("the union"), 25, {1.0, 0, 3});
  std::string joined;
  for (std::size_t i = 0; i < 25; ++i) {
    EXPECT_EQ(events[i]["token"], tokens[i]) << i;
    EXPECT_EQ(events[i]["text"], lm.tokenizer->token_bytes(tokens[i])) << i;
    joined += events[i]["text"].get<std::string>();
  }
  EXPECT_EQ(joined, text);
  EXPECT_EQ(events.back(), json::parse(R"({"done":true,"tokens":25,"finish_reason":"length"})"));
  EXPECT_EQ(server_->counters("lm").generate_success_count, 2);
  EXPECT_EQ(server_->counters("lm").generated_tokens, 50);
}

TEST_F(GenerateServeTest, StreamsBpeTokensAsWholeCharacters) {
  write_bpe_gpt(lm_path());
  start();
  for (std::uint64_t seed = 0; seed < 4; ++seed) {
    const json request = {{"prompt", "caf\xC3\xA9"}, {"max_tokens", 40}, {"seed", seed}};
    const std::string text = generated(request)["text"];
    json streaming = request;
    streaming["stream"] = true;
    auto res = post_generate(streaming);
    ASSERT_EQ(res->status, 200) << res->body;
    const std::vector<json> events = sse_events(res->body);  // every text parsed as UTF-8 JSON
    ASSERT_EQ(events.size(), 41u);
    std::string joined;
    for (const json& event : events)
      if (event.contains("text")) joined += event["text"].get<std::string>();
    EXPECT_EQ(joined, text) << "seed " << seed;
    EXPECT_EQ(events.back()["done"], true);
    EXPECT_EQ(events.back()["tokens"], 40);
    // Random weights sample raw bytes: the text is valid UTF-8, with U+FFFD for what is not.
    const LanguageModel lm = load_language_model(lm_path());
    Utf8Stream utf8;
    std::string expected = utf8.push(lm.tokenizer->decode(
        generate(*lm.model, lm.tokenizer->encode("caf\xC3\xA9"), 40, {1.0, 0, seed})));
    expected += utf8.finish();
    EXPECT_EQ(text, expected);
  }
}

TEST_F(GenerateServeTest, RejectsBadRequestsNamingTheField) {
  start();
  expect_error(post_generate({{"max_tokens", 5}}), 400, "the request has no \"prompt\"");
  expect_error(post_generate({{"prompt", ""}}), 400, "\"prompt\" is empty");
  expect_error(post_generate({{"prompt", "we"}, {"max_tokens", -1}}), 400,
               "\"max_tokens\" is -1; expected an integer in [0, 4096]");
  expect_error(post_generate({{"prompt", "we"}, {"max_tokens", 4097}}), 400, "\"max_tokens\"");
  expect_error(post_generate({{"prompt", "we"}, {"temperature", -1}}), 400, "\"temperature\"");
  expect_error(post_generate({{"prompt", "we"}, {"top_k", "3"}}), 400, "\"top_k\" is a string");
  expect_error(post_generate({{"prompt", "we"}, {"seed", -5}}), 400, "\"seed\" is -5");
  expect_error(post_generate({{"prompt", "we"}, {"stream", "true"}}), 400, "\"stream\"");
  expect_error(post_generate({{"prompt", "we"}, {"n", 2}}), 400, "unknown field \"n\"");
  expect_error(post_raw("{\"prompt\": \"we\",}"), 400, "malformed JSON");
  expect_error(post_raw(std::string(100000, '[')), 400, "the body is an array");
  // A character the vocabulary lacks, named with its offset.
  expect_error(post_generate({{"prompt", "we the People"}}), 400,
               "\"prompt\": character 'P' (U+0050) at byte offset 7 is not in the tokenizer's "
               "vocabulary");
  // A model of the other kind, on either route.
  expect_error(client()->Post("/v2/models/lm/infer",
                              R"({"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32",)"
                              R"("data":[1,2,3,4]}]})",
                              "application/json"),
               400, "model \"lm\" is a language model: POST /v2/models/lm/generate");
  expect_error(post_generate({{"prompt", "we"}}, "tiny"), 400,
               "model \"tiny\" is not a language model (it is a classification model): POST "
               "/v2/models/tiny/infer");
  expect_error(post_generate({{"prompt", "we"}}, "nope"), 404, "unknown model \"nope\"");
  expect_error(client()->Get("/v2/models/lm/generate"), 405, "takes POST");
  EXPECT_TRUE(contains(server_->metrics_text(),
                       "lathe_generate_request_failure_total{model=\"lm\",reason=\"bad_request\"} "
                       "12\n"))
      << server_->metrics_text();
  EXPECT_EQ(server_->counters("lm").failure_count, 1);  // the infer request
  EXPECT_EQ(server_->counters("tiny").generate_failure_count, 1);
  EXPECT_EQ(generated({{"prompt", "we"}, {"max_tokens", 3}})["tokens"], 3);
}

TEST_F(GenerateServeTest, AppliesTheServersLimits) {
  ServeOptions options;
  options.max_generate_tokens = 50;
  options.max_body_bytes = 2000;
  options.max_elements = 500;  // prompt bytes
  options.api_key = "k3y";
  start(options);
  const httplib::Headers key{{"X-API-Key", "k3y"}};
  expect_error(post_generate({{"prompt", "we"}}, "lm"), 401, "API key");
  expect_error(post_generate({{"prompt", "we"}, {"max_tokens", 51}}, "lm", key), 400,
               "expected an integer in [0, 50]");
  expect_error(post_generate({{"prompt", std::string(600, 'e')}, {"max_tokens", 1}}, "lm", key),
               400, "\"prompt\" is 600 bytes, more than this server's limit of 500");
  expect_error(post_generate({{"prompt", std::string(3000, 'e')}}, "lm", key), 413,
               "larger than 2000 bytes");
  auto ok = post_generate({{"prompt", "we"}, {"max_tokens", 50}}, "lm",
                          {{"Authorization", "Bearer k3y"}});
  ASSERT_EQ(ok->status, 200) << ok->body;
  EXPECT_EQ(json::parse(ok->body)["tokens"], 50);
}

TEST_F(GenerateServeTest, TimesOutLongGenerationsUnlessStreamed) {
  ServeOptions options;
  options.max_generate_tokens = 1000000;
  options.request_timeout = 1ms;
  start(options);
  expect_error(post_generate({{"prompt", "we"}, {"max_tokens", 1000000}}), 504,
               "did not finish within 1 ms (--request-timeout-ms)");
  const ModelCounters counters = server_->counters("lm");
  EXPECT_EQ(counters.generate_failure_count, 1);
  EXPECT_LT(counters.generated_tokens, 1000000);
  EXPECT_TRUE(contains(server_->metrics_text(),
                       "lathe_generate_request_failure_total{model=\"lm\",reason=\"timeout\"} 1"));
  // A stream has no deadline: it answers as it goes.
  auto streamed = post_generate({{"prompt", "we"}, {"max_tokens", 300}, {"stream", true}});
  ASSERT_EQ(streamed->status, 200);
  EXPECT_EQ(sse_events(streamed->body).back()["tokens"], 300);
}

TEST_F(GenerateServeTest, StopsGeneratingWhenTheClientGoesAway) {
  ServeOptions options;
  options.max_generate_tokens = 100000000;
  start(options);
  const std::string body = R"({"prompt":"we","max_tokens":100000000,"stream":true})";
  const std::string request =
      "POST /v2/models/lm/generate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
      "Content-Length: " +
      std::to_string(body.size()) + "\r\n\r\n" + body;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port_));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(request.size()));
  std::string answer;
  char buffer[4096];
  while (!contains(answer, "data: {")) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    ASSERT_GT(n, 0) << answer;
    answer.append(buffer, static_cast<std::size_t>(n));
  }
  EXPECT_TRUE(contains(answer, "HTTP/1.1 200")) << answer;
  EXPECT_TRUE(contains(answer, "text/event-stream")) << answer;
  ::close(fd);
  ASSERT_TRUE(eventually([this] { return server_->counters("lm").generate_failure_count == 1; }))
      << server_->metrics_text();
  EXPECT_LT(server_->counters("lm").generated_tokens, 100000000);
  EXPECT_TRUE(contains(
      server_->metrics_text(),
      "lathe_generate_request_failure_total{model=\"lm\",reason=\"client_disconnected\"} 1"));
  EXPECT_EQ(generated({{"prompt", "we"}, {"max_tokens", 5}})["tokens"], 5);
}

TEST_F(GenerateServeTest, ConcurrentRequestsShareTheModel) {
  start();
  const json request = {{"prompt", "the people"}, {"max_tokens", 40}, {"seed", 11}};
  const std::string expected = expected_text(lm_path(), "the people", 40, {1.0, 0, 11});
  std::vector<std::future<std::string>> answers;
  for (int i = 0; i < 8; ++i)
    answers.push_back(std::async(std::launch::async, [&, i] {
      json mine = request;
      mine["stream"] = i % 2 == 1;
      auto res = post_generate(mine);
      if (!res || res->status != 200) return std::string("(failed)");
      if (i % 2 == 0) return json::parse(res->body)["text"].get<std::string>();
      std::string joined;
      for (const json& event : sse_events(res->body))
        if (event.contains("text")) joined += event["text"].get<std::string>();
      return joined;
    }));
  for (auto& answer : answers) EXPECT_EQ(answer.get(), expected);
  EXPECT_EQ(server_->counters("lm").generate_success_count, 8);
}

TEST_F(GenerateServeTest, ReloadsALanguageModelBundle) {
  ServeOptions options;
  options.watch_interval = 20ms;
  start(options);
  const json request = {{"prompt", "we"}, {"max_tokens", 30}, {"seed", 2}};
  const std::string first = generated(request)["text"];
  write_char_gpt(lm_path(), 2);  // other weights, replaced atomically
  ASSERT_TRUE(eventually([this] { return server_->model_version("lm") == "2"; })) << log();
  const json second = generated(request);
  EXPECT_EQ(second["model_version"], "2");
  EXPECT_EQ(second["text"], expected_text(lm_path(), "we", 30, {1.0, 0, 2}));
  EXPECT_NE(second["text"], first);
  // A classifier in its place would break the clients of a language model: refused.
  write_tiny_classifier(lm_path());
  ASSERT_TRUE(eventually([this] { return server_->counters("lm").reload_failures >= 1; }));
  EXPECT_TRUE(contains(log(), "refused: its task, inputs or outputs differ")) << log();
  EXPECT_EQ(generated(request)["model_version"], "2");
}

}  // namespace
}  // namespace lathe
