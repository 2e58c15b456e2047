// InferenceServer in-process on an ephemeral port, driven over HTTP with httplib's client: every
// endpoint, predictions against Predictor, batching, limits, authentication, reload and drain.
// Timeouts are generous and nothing depends on a fixed port: the suite runs on loaded machines.
#include <gtest/gtest.h>
#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

#include "lathe/lathe.h"
#include "lathe/serve.h"
#include "tests/table_model.h"
#include "tests/test_support.h"

namespace lathe {
namespace {

using nlohmann::json;
using testing::TempDir;
using namespace std::chrono_literals;

// A 2x2-input, 2-class classifier; `seed` picks its weights.
void write_classifier(const std::filesystem::path& path, std::uint64_t seed) {
  Generator init(seed);
  auto model = make_sequential(json::array({{{"type", "flatten"}},
                                            {{"type", "linear"}, {"in", 4}, {"out", 3}},
                                            {{"type", "relu"}},
                                            {{"type", "linear"}, {"in", 3}, {"out", 2}}}),
                               init);
  model->eval();
  save_bundle(path, *model,
              {model->spec(),
               Preprocessing::normalize(0.5, 1.0, 2.0),
               {{"task", "classification"}, {"input_shape", {2, 2}}, {"classes", {"cat", "dog"}}},
               {}});
}

void write_regressor(const std::filesystem::path& path) {
  Generator init(11);
  auto model = make_sequential(json::array({{{"type", "linear"}, {"in", 3}, {"out", 1}}}), init);
  model->eval();
  save_bundle(path, *model,
              {model->spec(),
               Preprocessing::none(),
               {{"task", "regression"}, {"input_shape", {3}}, {"target", "y"}},
               {}});
}

std::string infer_body(const std::vector<double>& values, const std::vector<std::int64_t>& shape,
                       const std::string& datatype = "FP32", const json& extra = json::object()) {
  json body = extra;
  body["inputs"] = {
      {{"name", "input"}, {"shape", shape}, {"datatype", datatype}, {"data", values}}};
  return body.dump();
}

using lathe::testing::eventually;

// Sends `request` on a fresh connection and returns everything the server answers until it
// closes. For requests a well-behaved client library would not send, or would not wait
// to finish sending.
std::string raw_http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<std::uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0) {
    std::size_t sent = 0;
    while (sent < request.size()) {
      const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += static_cast<std::size_t>(n);
    }
    // No shutdown(SHUT_WR): httplib writes no answer to a half-closed connection. The request
    // says "Connection: close", so the server closes once it has answered.
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, n);
  }
  ::close(fd);
  return answer;
}

using lathe::testing::contains;

// A server on 127.0.0.1:0 serving `tiny` (the classifier) from a temporary folder.
class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override { write_classifier(bundle_path(), 3); }

  std::filesystem::path bundle_path() const { return dir_.path() / "tiny.safetensors"; }

  void start(ServeOptions options = {}, bool load = true) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.log = [this](std::string_view line) {
      std::lock_guard lock(log_mutex_);
      log_ += std::string(line) + "\n";
    };
    server_ = std::make_unique<InferenceServer>(std::vector<ServedBundle>{{"tiny", bundle_path()}},
                                                options);
    port_ = server_->start();
    ASSERT_GT(port_, 0);
    if (load) server_->load_models();
  }

  std::unique_ptr<httplib::Client> client() const {
    auto c = std::make_unique<httplib::Client>("127.0.0.1", port_);
    c->set_connection_timeout(30);
    c->set_read_timeout(120);
    c->set_write_timeout(60);
    return c;
  }

  httplib::Result post_infer(const std::string& body, const httplib::Headers& headers = {},
                             const std::string& model = "tiny") const {
    return client()->Post(("/v2/models/" + model + "/infer").c_str(), headers, body,
                          "application/json");
  }

  std::string log() {
    std::lock_guard lock(log_mutex_);
    return log_;
  }

  // The probabilities Predictor gives for `rows` (flat, 4 per example) from the bundle on disk.
  std::vector<float> expected_probabilities(
      const std::vector<double>& rows,
      InferencePrecision precision = InferencePrecision::Float32) const {
    const Predictor predictor = Predictor::load(bundle_path(), precision);
    const std::int64_t n = static_cast<std::int64_t>(rows.size()) / 4;
    const Tensor p = predictor.predict(Tensor::from_vector(rows, {n, 4}));
    const std::vector<double> values = p.to_vector();
    return {values.begin(), values.end()};
  }

  static void expect_error(const httplib::Result& res, int status, const std::string& fragment) {
    ASSERT_TRUE(res) << httplib::to_string(res.error());
    EXPECT_EQ(res->status, status) << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json");
    const json body = json::parse(res->body, nullptr, false);
    ASSERT_TRUE(body.is_object() && body.contains("error")) << res->body;
    EXPECT_TRUE(contains(body["error"].get<std::string>(), fragment))
        << "error: " << body["error"] << "\nexpected to contain: " << fragment;
  }

  void expect_probabilities(const json& output, const std::vector<float>& expected) const {
    ASSERT_EQ(output["name"], "probabilities");
    ASSERT_EQ(output["datatype"], "FP32");
    ASSERT_EQ(output["data"].size(), expected.size());
    for (std::size_t i = 0; i < expected.size(); ++i)
      EXPECT_NEAR(output["data"][i].get<double>(), expected[i], 1e-6) << "value " << i;
  }

  TempDir dir_;
  std::mutex log_mutex_;  // before server_, whose threads may log until it is destroyed
  std::string log_;
  std::unique_ptr<InferenceServer> server_;
  int port_ = 0;
};

TEST_F(ServeTest, AnswersEveryEndpoint) {
  start();
  auto c = client();
  auto live = c->Get("/v2/health/live");
  ASSERT_TRUE(live);
  EXPECT_EQ(live->status, 200);
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);

  auto server = c->Get("/v2");
  ASSERT_EQ(server->status, 200);
  const json server_metadata = json::parse(server->body);
  EXPECT_EQ(server_metadata["name"], "lathe");
  EXPECT_EQ(server_metadata["version"], lathe::version());
  EXPECT_TRUE(server_metadata["extensions"].is_array());

  auto metadata = c->Get("/v2/models/tiny");
  ASSERT_EQ(metadata->status, 200);
  const json model = json::parse(metadata->body);
  EXPECT_EQ(model["name"], "tiny");
  EXPECT_EQ(model["versions"], json({"1"}));
  EXPECT_EQ(model["platform"], "lathe");
  EXPECT_EQ(model["inputs"],
            json::parse(R"([{"name":"input","datatype":"FP32","shape":[-1,2,2]}])"));
  EXPECT_EQ(model["outputs"],
            json::parse(R"([{"name":"probabilities","datatype":"FP32","shape":[-1,2]},
                            {"name":"class_index","datatype":"INT64","shape":[-1]}])"));
  EXPECT_EQ(model["parameters"]["classes"], json({"cat", "dog"}));
  EXPECT_EQ(c->Get("/v2/models/tiny/versions/1")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/tiny/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/tiny/versions/1/ready")->status, 200);

  expect_error(c->Get("/v2/models/nope"), 404, "unknown model \"nope\"; this server has \"tiny\"");
  expect_error(c->Get("/v2/models/nope/ready"), 404, "unknown model");
  expect_error(c->Get("/v2/models/tiny/versions/7"), 404, "has no version \"7\"");
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {1, 4}), {}, "nope"), 404, "unknown model");
  expect_error(c->Get("/nowhere"), 404, "no route for GET /nowhere");
  // Percent-decoded, but an encoded slash stays inside its segment: no model has that name.
  EXPECT_EQ(c->Get("/v2/models/t%69ny/ready")->status, 200);
  expect_error(c->Get("/v2/models/tiny%2Fready"), 404, "unknown model \"tiny%2Fready\"");
  expect_error(c->Get("/v2/models/tiny/infer"), 405, "takes POST");
  expect_error(c->Delete("/v2/health/live"), 405, "takes GET");

  auto metrics = c->Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_TRUE(contains(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4"));
  EXPECT_TRUE(eventually([this] {
    return contains(server_->metrics_text(),
                    "lathe_http_requests_total{endpoint=\"health_live\",code=\"200\"} 1\n");
  }));
  EXPECT_TRUE(contains(metrics->body, "lathe_model_version{model=\"tiny\"} 1\n"));
}

TEST_F(ServeTest, IsNotReadyUntilTheModelsAreLoaded) {
  start({}, /*load=*/false);
  auto c = client();
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);
  expect_error(c->Get("/v2/health/ready"), 503, "not loaded yet");
  expect_error(c->Get("/v2/models/tiny/ready"), 503, "model \"tiny\" is not loaded yet");
  expect_error(c->Get("/v2/models/tiny"), 503, "not loaded yet");
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {1, 4})), 503, "not loaded yet");
  server_->load_models();
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  EXPECT_EQ(c->Get("/v2/models/tiny/ready")->status, 200);
  EXPECT_EQ(post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status, 200);
}

TEST_F(ServeTest, PredictionsEqualPredictor) {
  start();
  const std::vector<double> rows{1, 2, 3, 4, -4, 0, 8, 2, 0.5, 0.25, -1, 3};
  auto res = post_infer(infer_body(rows, {3, 2, 2}, "FP32", {{"id", "abc"}}));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  EXPECT_EQ(body["model_name"], "tiny");
  EXPECT_EQ(body["model_version"], "1");
  EXPECT_EQ(body["id"], "abc");
  ASSERT_EQ(body["outputs"].size(), 2u);
  const std::vector<float> expected = expected_probabilities(rows);
  expect_probabilities(body["outputs"][0], expected);
  EXPECT_EQ(body["outputs"][0]["shape"], json({3, 2}));
  const json& classes = body["outputs"][1];
  EXPECT_EQ(classes["name"], "class_index");
  EXPECT_EQ(classes["datatype"], "INT64");
  EXPECT_EQ(classes["shape"], json({3}));
  for (int row = 0; row < 3; ++row)
    EXPECT_EQ(classes["data"][row], expected[2 * row + 1] > expected[2 * row] ? 1 : 0);

  // Nested data, [N, features] shapes and integer datatypes give the same answer.
  const std::vector<double> ints{1, 2, 3, 4, 200, 0, 7, 9};  // written as 1.0, 2.0, ...
  const std::vector<float> expected_ints = expected_probabilities(ints);
  for (const char* type : {"FP64", "INT64", "INT32", "UINT8"}) {
    auto typed = post_infer(infer_body(ints, {2, 4}, type));
    ASSERT_EQ(typed->status, 200) << type << ": " << typed->body;
    expect_probabilities(json::parse(typed->body)["outputs"][0], expected_ints);
  }
  auto nested =
      post_infer(R"({"inputs":[{"name":"input","shape":[2,2,2],"datatype":"FP32",)"
                 R"("data":[[[1,2],[3,4]],[[200,0],[7,9]]]}],"outputs":[{"name":"class_index"}]})");
  ASSERT_EQ(nested->status, 200) << nested->body;
  const json only = json::parse(nested->body);
  ASSERT_EQ(only["outputs"].size(), 1u);
  EXPECT_EQ(only["outputs"][0]["name"], "class_index");
  EXPECT_FALSE(only.contains("id"));
}

TEST_F(ServeTest, ServesInInt8WhenAsked) {
  ServeOptions options;
  options.precision = InferencePrecision::Int8;
  start(options);
  const std::vector<double> rows{1, 2, 3, 4, -4, 0, 8, 2, 0.5, 0.25, -1, 3};
  auto res = post_infer(infer_body(rows, {3, 4}, "FP32"));
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const json body = json::parse(res->body);
  expect_probabilities(body["outputs"][0], expected_probabilities(rows, InferencePrecision::Int8));
  const std::vector<float> float32 = expected_probabilities(rows);
  for (std::size_t i = 0; i < float32.size(); ++i)
    EXPECT_NEAR(body["outputs"][0]["data"][i].get<double>(), float32[i], 0.05) << "value " << i;
}

TEST_F(ServeTest, ServesRegressionModels) {
  const auto path = dir_.path() / "houses.safetensors";
  write_regressor(path);
  InferenceServer server({{default_model_name(path), path}}, {.port = 0, .log = [](auto) {}});
  const int port = server.start();
  server.load_models();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120);
  const json model = json::parse(c.Get("/v2/models/houses")->body);
  EXPECT_EQ(model["outputs"],
            json::parse(R"([{"name":"values","datatype":"FP32","shape":[-1,1]}])"));
  auto res = c.Post("/v2/models/houses/infer", infer_body({1, 2, 3, -1, 0, 1}, {2, 3}),
                    "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  const json out = json::parse(res->body)["outputs"];
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]["shape"], json({2, 1}));
  const Tensor expected =
      Predictor::load(path).predict(Tensor::from_vector({1, 2, 3, -1, 0, 1}, {2, 3}));
  EXPECT_NEAR(out[0]["data"][0].get<double>(), expected.at({0, 0}), 1e-6);
  EXPECT_NEAR(out[0]["data"][1].get<double>(), expected.at({1, 0}), 1e-6);
}

// A classifier trained on a table with a text column (one-hot, unknown categories an error) and
// a numeric column with median imputation: served with one input per column.
void write_table_classifier(const std::filesystem::path& path) {
  const RawTable table = parse_csv_table(
      "island,bill,species\nDream,39,Adelie\nBiscoe,NA,Gentoo\nDream,50,Chinstrap\n"
      "Torgersen,41,Adelie\n",
      "train.csv");
  TableOptions options;
  options.target = "species";
  options.impute = "median";
  options.unknown_category = "error";
  const TableEncoding encoding = TableEncoding::fit(table, {0, 1, 2, 3}, options);
  const LoadedBundle bundle = testing::linear_table_classifier(encoding, 5);
  save_bundle(path, *bundle.model, bundle.info);
}

TEST_F(ServeTest, ServesTableModelsWithOneInputPerColumn) {
  const auto path = dir_.path() / "penguins.safetensors";
  write_table_classifier(path);
  InferenceServer server({{default_model_name(path), path}}, {.port = 0, .log = [](auto) {}});
  const int port = server.start();
  server.load_models();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120);
  const json model = json::parse(c.Get("/v2/models/penguins")->body);
  EXPECT_EQ(model["inputs"], json::parse(R"([{"name":"island","datatype":"BYTES","shape":[-1]},
                                             {"name":"bill","datatype":"FP32","shape":[-1]}])"));
  EXPECT_EQ(model["parameters"]["classes"], json({"Adelie", "Chinstrap", "Gentoo"}));
  EXPECT_EQ(model["parameters"]["columns"][0]["categories"],
            json({"Biscoe", "Dream", "Torgersen"}));

  const std::string body =
      R"({"inputs":[{"name":"island","shape":[2],"datatype":"BYTES","data":["Biscoe","Dream"]},)"
      R"({"name":"bill","shape":[2,1],"datatype":"FP32","data":[45.5,null]}]})";
  auto res = c.Post("/v2/models/penguins/infer", body, "application/json");
  ASSERT_EQ(res->status, 200) << res->body;
  const json out = json::parse(res->body)["outputs"];
  EXPECT_EQ(out[0]["shape"], json({2, 3}));
  // What Predictor gives for the same rows read from CSV.
  TempDir dir;
  const Predictor predictor = Predictor::load(path);
  const Tensor expected = predictor.predict_rows(
      read_csv_table(dir.write("rows.csv", "bill,island\n45.5,Biscoe\n,Dream\n")));
  for (std::int64_t i = 0; i < 6; ++i)
    EXPECT_NEAR(out[0]["data"][i].get<double>(), expected.data<float>()[i], 1e-6) << i;

  res = c.Post("/v2/models/penguins/infer",
               R"({"inputs":[{"name":"island","shape":[1],"datatype":"BYTES","data":["Atlantis"]},)"
               R"({"name":"bill","shape":[1],"datatype":"FP32","data":[40]}]})",
               "application/json");
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"],
            "inputs[0].data[0]: column 'island': 'Atlantis' is not a category seen in training "
            "(Biscoe, Dream, Torgersen), and unknown_category is \"error\"");
  res = c.Post("/v2/models/penguins/infer",
               R"({"inputs":[{"name":"island","shape":[1],"datatype":"BYTES","data":["Dream"]},)"
               R"({"name":"bill","shape":[1],"datatype":"BYTES","data":["long"]}]})",
               "application/json");
  EXPECT_EQ(res->status, 400);
  EXPECT_EQ(json::parse(res->body)["error"],
            "inputs[1] (\"bill\"): datatype BYTES, but the column is numeric in this model; send "
            "its values as numbers (FP32, FP64, INT64, INT32 or UINT8)");
}

TEST_F(ServeTest, BatchesConcurrentRequestsAndSplitsTheirRows) {
  // A batch closes when 8 examples are queued or 20 s after the first: 8 requests sent together
  // make one batch however slow the machine is.
  ServeOptions options;
  options.max_batch_size = 8;
  options.max_queue_delay = 20s;
  start(options);
  constexpr int kRequests = 8;
  std::vector<std::future<std::pair<int, std::string>>> answers;
  for (int i = 0; i < kRequests; ++i)
    answers.push_back(std::async(std::launch::async, [this, i] {
      auto res = post_infer(
          infer_body({1.0 * i, 2, -0.5 * i, 4}, {1, 4}, "FP32", {{"id", std::to_string(i)}}));
      return res ? std::make_pair(res->status, res->body) : std::make_pair(-1, std::string());
    }));
  for (int i = 0; i < kRequests; ++i) {
    const auto [status, text] = answers[i].get();
    ASSERT_EQ(status, 200) << text;
    const json body = json::parse(text);
    EXPECT_EQ(body["id"], std::to_string(i));
    expect_probabilities(body["outputs"][0], expected_probabilities({1.0 * i, 2, -0.5 * i, 4}));
  }
  const ModelCounters counters = server_->counters("tiny");
  EXPECT_EQ(counters.inference_count, kRequests);
  EXPECT_LT(counters.execution_count, counters.inference_count);
  EXPECT_EQ(counters.success_count, kRequests);
  EXPECT_TRUE(
      contains(server_->metrics_text(), "lathe_inference_exec_count_total{model=\"tiny\"} " +
                                            std::to_string(counters.execution_count)));
}

TEST_F(ServeTest, RequestsWaitingForTheirBatchHoldNoThread) {
  // One HTTP thread, and a batch that closes only when 8 examples are queued (or after 60 s):
  // the 8 requests make one batch only if each waits for its answer without holding the thread.
  ServeOptions options;
  options.http_threads = 1;
  options.max_batch_size = 8;
  options.max_queue_delay = 60s;
  options.request_timeout = 90s;
  start(options);
  std::vector<std::future<int>> answers;
  for (int i = 0; i < 8; ++i)
    answers.push_back(std::async(std::launch::async, [this, i] {
      auto res = post_infer(infer_body({1, 2, 3, 1.0 * i}, {1, 4}));
      return res ? res->status : -1;
    }));
  for (auto& answer : answers) EXPECT_EQ(answer.get(), 200);
  EXPECT_EQ(server_->counters("tiny").execution_count, 1);
}

TEST_F(ServeTest, ZeroQueueDelayRunsWhatIsQueuedAtOnce) {
  ServeOptions options;
  options.max_queue_delay = 0us;
  options.request_timeout = 60s;
  start(options);
  for (int i = 0; i < 3; ++i) {
    auto res = post_infer(infer_body({1, 2, 3, 1.0 * i}, {1, 4}));
    ASSERT_EQ(res->status, 200) << res->body;
    expect_probabilities(json::parse(res->body)["outputs"][0],
                         expected_probabilities({1, 2, 3, 1.0 * i}));
  }
  EXPECT_EQ(server_->counters("tiny").execution_count, 3);
}

TEST_F(ServeTest, AnswersServiceUnavailableWhenTheQueueIsFull) {
  ServeOptions options;
  options.max_batch_size = 64;
  options.max_queue_delay = 3s;  // the first two wait here, filling the queue
  options.max_queue = 2;
  start(options);
  auto first = std::async(std::launch::async, [this] {
    return post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status;
  });
  auto second = std::async(std::launch::async, [this] {
    return post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status;
  });
  ASSERT_TRUE(eventually([this] {
    return contains(server_->metrics_text(), "lathe_inference_queue_depth{model=\"tiny\"} 2\n");
  }));
  auto full = post_infer(infer_body({1, 2, 3, 4}, {1, 4}));
  expect_error(full, 503, "the queue of model \"tiny\" is full");
  EXPECT_EQ(full->get_header_value("Retry-After"), "1");
  EXPECT_EQ(first.get(), 200);
  EXPECT_EQ(second.get(), 200);
  EXPECT_TRUE(
      contains(server_->metrics_text(),
               "lathe_inference_request_failure_total{model=\"tiny\",reason=\"queue_full\"} 1"));
}

TEST_F(ServeTest, TimesOutSlowRequestsAndSkipsThem) {
  ServeOptions options;
  options.max_batch_size = 64;
  options.max_queue_delay = 2s;
  options.request_timeout = 100ms;
  start(options);
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {1, 4})), 504, "within 100 ms");
  EXPECT_EQ(client()->Get("/v2/health/live")->status, 200);
  // The abandoned request is dropped, not computed, once its batch would have run.
  std::this_thread::sleep_for(2500ms);
  EXPECT_EQ(server_->counters("tiny").execution_count, 0);
  EXPECT_TRUE(
      contains(server_->metrics_text(),
               "lathe_inference_request_failure_total{model=\"tiny\",reason=\"timeout\"} 1"));
}

TEST_F(ServeTest, TimesOutRequestsWhoseDeadlinePassedWhileTheirBodyWasRead) {
  // Bodies this large are parsed off the event threads, and parsing them takes longer than the
  // timeout: the deadline has passed before the request reaches its batcher. (Once this crashed
  // the server: the timer fired before the request had anywhere to send its answer.)
  ServeOptions options;
  options.request_timeout = 1ms;
  options.max_queue_delay = 2s;  // and no batch could answer in time anyway
  start(options);
  const std::string big = infer_body(std::vector<double>(4 * 100000, 0.25), {100000, 4});
  ASSERT_GT(big.size(), 256u << 10);
  std::vector<std::future<int>> answers;
  for (int i = 0; i < 4; ++i)
    answers.push_back(std::async(std::launch::async, [&] {
      auto res = post_infer(big);
      return res ? res->status : -1;
    }));
  for (auto& answer : answers) EXPECT_EQ(answer.get(), 504);
  EXPECT_EQ(client()->Get("/v2/health/live")->status, 200);
}

TEST_F(ServeTest, LimitsTheBodySize) {
  ServeOptions options;
  options.max_body_bytes = 1000;
  start(options);
  std::vector<double> many(400, 1.0);
  const std::string big = infer_body(many, {100, 4});
  ASSERT_GT(big.size(), 1000u);
  const std::string answer =
      raw_http(port_,
               "POST /v2/models/tiny/infer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
               "Content-Length: " +
                   std::to_string(big.size()) + "\r\n\r\n" + big);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 413") << answer;
  EXPECT_TRUE(contains(answer, R"({"error":"the request body is larger than 1000 bytes)"))
      << answer;
  // Chunked (no Content-Length) and compressed bodies are counted as they arrive, decompressed.
  auto c = client();
  std::size_t sent = 0;
  auto chunked = c->Post(
      "/v2/models/tiny/infer",
      [&](std::size_t, httplib::DataSink& sink) {
        if (sent < big.size()) {
          const std::size_t n = std::min<std::size_t>(300, big.size() - sent);
          sink.write(big.data() + sent, n);
          sent += n;
        } else {
          sink.done();
        }
        return true;
      },
      "application/json");
  expect_error(chunked, 413, "larger than 1000 bytes");
  auto compressing = client();
  compressing->set_compress(true);
  const std::string zeros = infer_body(std::vector<double>(4000, 0.0), {1000, 4});
  auto compressed = compressing->Post("/v2/models/tiny/infer", zeros, "application/json");
  expect_error(compressed, 413, "larger than 1000 bytes");
  // Small bodies still go through, compressed or not.
  EXPECT_EQ(
      compressing
          ->Post("/v2/models/tiny/infer", infer_body({1, 2, 3, 4}, {1, 4}), "application/json")
          ->status,
      200);
  // Bodies where none belongs are refused before they are read.
  httplib::Headers chunked_header{{"Transfer-Encoding", "chunked"}};
  expect_error(client()->Get("/v2/health/ready", chunked_header), 400, "takes no request body");
  // Bodies that cannot be decoded are refused naming the encoding and what is wrong.
  expect_error(client()->Post("/v2/models/tiny/infer", {{"Content-Encoding", "gzip"}}, "{}",
                              "application/json"),
               400, "the gzip body is not valid gzip data");
  expect_error(client()->Post("/v2/models/tiny/infer", {{"Content-Encoding", "zstd"}}, "{}",
                              "application/json"),
               415, "unsupported Content-Encoding \"zstd\"");
  // Each counts as a bad request of the model (3 bodies too large, 2 undecodable).
  EXPECT_TRUE(
      contains(server_->metrics_text(),
               "lathe_inference_request_failure_total{model=\"tiny\",reason=\"bad_request\"} 5\n"))
      << server_->metrics_text();
  // Unknown paths are 404s, with a body or without.
  const std::string unknown = raw_http(port_,
                                       "POST /v2/nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                                       "Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n");
  EXPECT_EQ(unknown.substr(0, 12), "HTTP/1.1 404") << unknown;
  EXPECT_TRUE(contains(unknown, R"({"error":"no route for POST /v2/nope"})")) << unknown;
}

TEST_F(ServeTest, RefusesDeepJsonAndKeepsServing) {
  start();
  expect_error(post_infer(std::string(100000, '[')), 400, "the body is a JSON array");
  expect_error(post_infer(R"({"inputs":[{"name":"input","data":)" + std::string(100000, '[')), 400,
               "deeper than 32 levels");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  expect_error(post_infer(objects), 400, "deeper than 32 levels");
  EXPECT_EQ(client()->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status, 200);
}

TEST_F(ServeTest, RejectsBadRequestsWithMessagesThatNameTheProblem) {
  start();
  expect_error(post_infer(infer_body({1, 2, 3}, {1, 3})), 400,
               "shape [1,3] does not fit this model; expected [N,2,2] or [N,4]");
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {1, 4}, "BOOL")), 400,
               "datatype \"BOOL\" is not supported");
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {4611686018427387904, 4})), 400,
               "holds more than");
  expect_error(post_infer(infer_body({1, 2, 3, 4}, {2, 4})), 400, "needs 8");
  expect_error(post_infer(infer_body({1, 256, 3, 4}, {1, 4}, "UINT8")), 400, "above the UINT8");
  expect_error(post_infer("{\"inputs\": [}"), 400, "malformed JSON");
  expect_error(post_infer(""), 400, "malformed JSON");
  expect_error(post_infer("{}"), 400, "no \"inputs\"");
  expect_error(
      post_infer(R"({"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]})"),
      400, "this model's input is \"input\"");
  expect_error(post_infer(R"({"id":3,"inputs":[]})"), 400, "\"id\" is a number");
  EXPECT_TRUE(
      contains(server_->metrics_text(),
               "lathe_inference_request_failure_total{model=\"tiny\",reason=\"bad_request\"} 10"));
  // httplib counts a request (its logger runs) just after sending the answer.
  EXPECT_TRUE(eventually([this] {
    return contains(server_->metrics_text(),
                    "lathe_http_requests_total{endpoint=\"infer\",code=\"400\"} 10");
  })) << server_->metrics_text();
  EXPECT_EQ(post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status, 200);
}

TEST_F(ServeTest, RequiresTheApiKeyExceptForHealth) {
  ServeOptions options;
  options.api_key = "s3cret";
  start(options);
  const std::string body = infer_body({1, 2, 3, 4}, {1, 4});
  expect_error(post_infer(body), 401, "API key");
  EXPECT_EQ(post_infer(body)->get_header_value("WWW-Authenticate"), "Bearer");
  expect_error(post_infer(body, {{"Authorization", "Bearer wrong"}}), 401, "API key");
  expect_error(post_infer(body, {{"X-API-Key", "s3cre"}}), 401, "API key");
  EXPECT_EQ(post_infer(body, {{"Authorization", "Bearer s3cret"}})->status, 200);
  EXPECT_EQ(post_infer(body, {{"Authorization", "bearer s3cret"}})->status, 200);  // RFC 9110
  expect_error(post_infer(body, {{"Authorization", "bearers3cret"}}), 401, "API key");
  EXPECT_EQ(post_infer(body, {{"X-API-Key", "s3cret"}})->status, 200);
  auto c = client();
  EXPECT_EQ(c->Get("/v2/health/live")->status, 200);
  EXPECT_EQ(c->Get("/v2/health/ready")->status, 200);
  expect_error(c->Get("/metrics"), 401, "API key");
  expect_error(c->Get("/v2/models/tiny"), 401, "API key");
  EXPECT_EQ(c->Get("/v2/models/tiny", {{"X-API-Key", "s3cret"}})->status, 200);
}

TEST_F(ServeTest, ReloadsAChangedBundleAndKeepsTheOldOneWhenTheNewOneIsBroken) {
  ServeOptions options;
  options.watch_interval = 20ms;
  start(options);
  const std::vector<double> row{1, 2, 3, 4};
  const std::vector<float> first = expected_probabilities(row);

  write_classifier(bundle_path(), 99);  // atomic replace: the watcher sees a new file
  ASSERT_TRUE(eventually([this] { return server_->model_version("tiny") == "2"; })) << log();
  const std::vector<float> second = expected_probabilities(row);
  ASSERT_NE(first, second);
  auto res = post_infer(infer_body(row, {1, 4}));
  ASSERT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["model_version"], "2");
  expect_probabilities(json::parse(res->body)["outputs"][0], second);
  EXPECT_EQ(json::parse(client()->Get("/v2/models/tiny")->body)["versions"], json({"2"}));

  write_file_atomically(bundle_path(), "this is not a bundle");
  ASSERT_TRUE(eventually([this] { return server_->counters("tiny").reload_failures >= 1; }));
  EXPECT_TRUE(contains(log(), "error: reloading model 'tiny'")) << log();
  EXPECT_TRUE(contains(log(), "still serving version 2")) << log();
  EXPECT_EQ(server_->model_version("tiny"), "2");
  res = post_infer(infer_body(row, {1, 4}));
  ASSERT_EQ(res->status, 200);
  expect_probabilities(json::parse(res->body)["outputs"][0], second);
  EXPECT_EQ(client()->Get("/v2/health/ready")->status, 200);

  // What SIGHUP does: reload everything now, whether or not the file changed.
  EXPECT_EQ(server_->reload_all(), 1);
  EXPECT_EQ(server_->model_version("tiny"), "2");
  write_classifier(bundle_path(), 3);
  ASSERT_TRUE(eventually([this] { return server_->model_version("tiny") == "3"; })) << log();
  EXPECT_EQ(server_->reload_all(), 0);
  EXPECT_EQ(server_->model_version("tiny"), "4");
  EXPECT_TRUE(contains(server_->metrics_text(),
                       "lathe_model_reloads_total{model=\"tiny\",result=\"success\"} 3"));
}

// A reload whose bundle takes other inputs or gives other outputs would break the clients of the
// version being served: it is refused and logged, unless the operator allows it.
TEST_F(ServeTest, RefusesAReloadWhoseSignatureDiffersUnlessAllowed) {
  for (const bool allowed : {false, true}) {
    write_classifier(bundle_path(), 3);
    ServeOptions options;
    options.watch_interval = 20ms;
    options.allow_signature_change = allowed;
    start(options);
    write_regressor(bundle_path());  // 3 inputs, one value out, in place of 2x2 in, 2 classes
    if (!allowed) {
      ASSERT_TRUE(eventually([this] { return server_->counters("tiny").reload_failures >= 1; }));
      EXPECT_TRUE(contains(log(), "refused: its task, inputs or outputs differ from version 1"))
          << log();
      EXPECT_TRUE(contains(log(), "--allow-signature-change")) << log();
      EXPECT_EQ(server_->model_version("tiny"), "1");
      EXPECT_EQ(post_infer(infer_body({1, 2, 3, 4}, {1, 4}))->status, 200);
    } else {
      ASSERT_TRUE(eventually([this] { return server_->model_version("tiny") == "2"; })) << log();
      EXPECT_EQ(post_infer(infer_body({1, 2, 3}, {1, 3}))->status, 200);
    }
    server_->stop();
  }
}

TEST_F(ServeTest, StopFinishesRequestsInFlight) {
  ServeOptions options;
  options.max_queue_delay = 5s;
  start(options);
  auto in_flight = std::async(std::launch::async, [this] {
    auto res = post_infer(infer_body({1, 2, 3, 4}, {1, 4}));
    return res ? res->status : -1;
  });
  ASSERT_TRUE(eventually([this] {
    return contains(server_->metrics_text(), "lathe_inference_queue_depth{model=\"tiny\"} 1\n");
  }));
  auto stopping = std::async(std::launch::async, [this] { server_->stop(); });
  // While the request in flight waits for its batch, a new connection is refused at once, not
  // accepted and left unanswered.
  auto late = client();
  late->set_connection_timeout(2);
  late->set_read_timeout(2);
  EXPECT_TRUE(eventually([&] {
    const auto res = late->Get("/v2/health/live");
    return !res && res.error() == httplib::Error::Connection;
  }));
  EXPECT_EQ(in_flight.wait_for(0s), std::future_status::timeout);
  stopping.get();
  EXPECT_EQ(in_flight.get(), 200);
  auto after = client();
  after->set_connection_timeout(2);
  EXPECT_FALSE(after->Get("/v2/health/live"));
  server_->stop();  // idempotent
}

TEST(ServeNames, DefaultsToTheFileStemAndRejectsClashes) {
  EXPECT_EQ(default_model_name("runs/fashion_mlp/model.safetensors"), "model");
  const auto quiet = ServeOptions{.log = [](std::string_view) {}};
  EXPECT_NE(testing::error_of([&] {
              InferenceServer({{"m", "a.safetensors"}, {"m", "b.safetensors"}}, quiet);
            }).find("two bundles would be served as 'm'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              InferenceServer({{"a/b", "a.safetensors"}}, quiet);
            }).find("model name 'a/b'"),
            std::string::npos);
  EXPECT_NE(testing::error_of([&] {
              InferenceServer({{"m", "/nonexistent/m.safetensors"}}, quiet).load_models();
            }).find("cannot serve model 'm'"),
            std::string::npos);
}

TEST_F(ServeTest, ServesSeveralModels) {
  const auto other = dir_.path() / "other.safetensors";
  write_classifier(other, 5);
  InferenceServer server({{"tiny", bundle_path()}, {"other", other}},
                         {.port = 0, .log = [](auto) {}});
  const int port = server.start();
  server.load_models();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(120);
  for (const char* name : {"tiny", "other"}) {
    auto res = c.Post((std::string("/v2/models/") + name + "/infer").c_str(),
                      infer_body({1, 2, 3, 4}, {1, 4}), "application/json");
    ASSERT_EQ(res->status, 200) << res->body;
    EXPECT_EQ(json::parse(res->body)["model_name"], name);
  }
  EXPECT_EQ(server.counters("tiny").inference_count, 1);
  EXPECT_EQ(server.counters("other").inference_count, 1);
}

}  // namespace
}  // namespace lathe
