// The /metrics text: endpoint labels, cumulative histogram buckets, and lines a Prometheus
// scraper accepts.
#include <gtest/gtest.h>

#include <cctype>
#include <cstring>
#include <sstream>

#include "src/serve/metrics.h"

namespace lathe::serve {
namespace {

// `name{label="value",...} number`, with \" and \\ escapes in values (the exposition format).
bool is_sample_line(const std::string& line) {
  std::size_t i = 0;
  auto name = [&] {
    const std::size_t start = i;
    while (i < line.size() && (std::islower(static_cast<unsigned char>(line[i])) || line[i] == '_'))
      ++i;
    return i > start;
  };
  if (!name()) return false;
  if (i < line.size() && line[i] == '{') {
    ++i;
    for (;;) {
      if (!name() || line.compare(i, 2, "=\"") != 0) return false;
      for (i += 2; i < line.size() && line[i] != '"'; ++i)
        if (line[i] == '\\') ++i;
      if (i >= line.size()) return false;
      ++i;  // the closing quote
      if (i < line.size() && line[i] == ',') {
        ++i;
        continue;
      }
      if (i >= line.size() || line[i] != '}') return false;
      ++i;
      break;
    }
  }
  if (i >= line.size() || line[i] != ' ' || i + 1 == line.size()) return false;
  for (++i; i < line.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(line[i])) && !std::strchr("+-.e", line[i]))
      return false;
  return true;
}

TEST(ServeMetrics, LabelsEndpointsByRouteNotByPath) {
  EXPECT_EQ(Metrics::endpoint_of("POST", "/v2/models/m/infer"), "infer");
  EXPECT_EQ(Metrics::endpoint_of("POST", "/v2/models/m/versions/3/infer"), "infer");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/models/m/infer"), "other");
  EXPECT_EQ(Metrics::endpoint_of("POST", "/v2/models/m/generate"), "generate");
  EXPECT_EQ(Metrics::endpoint_of("POST", "/v2/models/m/versions/2/generate"), "generate");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/models/m/generate"), "other");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/models/m"), "model_metadata");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/models/m/versions/3"), "model_metadata");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/models/m/ready"), "model_ready");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/health/live"), "health_live");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2/health/ready"), "health_ready");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/v2"), "server_metadata");
  EXPECT_EQ(Metrics::endpoint_of("GET", "/metrics"), "metrics");
  for (const char* path : {"/", "/v2/models/", "/v2/models//infer", "/v2/models/m/versions/",
                           "/v2/models/m/versions//infer", "/v2/models/m/x", "/etc/passwd"})
    EXPECT_EQ(Metrics::endpoint_of("GET", path), "other") << path;
}

TEST(ServeMetrics, HistogramBucketsAreCumulative) {
  Histogram histogram({1, 2, 5});
  for (const double value : {0.5, 1.0, 1.5, 3.0, 100.0}) histogram.observe(value);
  std::string out;
  histogram.write(out, "h", "model=\"m\"");
  EXPECT_EQ(out,
            "h_bucket{model=\"m\",le=\"1\"} 2\n"
            "h_bucket{model=\"m\",le=\"2\"} 3\n"
            "h_bucket{model=\"m\",le=\"5\"} 4\n"
            "h_bucket{model=\"m\",le=\"+Inf\"} 5\n"
            "h_sum{model=\"m\"} 106\n"
            "h_count{model=\"m\"} 5\n");
}

TEST(ServeMetrics, WritesValidPrometheusText) {
  Metrics metrics;
  metrics.add_model("fashion");
  metrics.add_model("a\"b");
  metrics.record_http("infer", 200);
  metrics.record_http("infer", 400);
  metrics.record_infer_success("fashion");
  metrics.record_infer_failure("fashion", FailureReason::QueueFull);
  metrics.record_batch("fashion", 5, {0.001, 0.002}, 0.004);
  metrics.record_reload("fashion", false);
  metrics.set_model_version("fashion", 2);
  const std::string text = metrics.text();
  const ModelCounters counters = metrics.counters("fashion");
  EXPECT_EQ(counters.inference_count, 5);
  EXPECT_EQ(counters.execution_count, 1);
  EXPECT_EQ(counters.success_count, 1);
  EXPECT_EQ(counters.failure_count, 1);
  EXPECT_EQ(counters.reload_failures, 1);
  for (const char* line :
       {"lathe_http_requests_total{endpoint=\"infer\",code=\"400\"} 1",
        "lathe_inference_request_failure_total{model=\"fashion\",reason=\"queue_full\"} 1",
        "lathe_inference_count_total{model=\"fashion\"} 5",
        "lathe_inference_exec_count_total{model=\"fashion\"} 1",
        "lathe_inference_queue_seconds_count{model=\"fashion\"} 2",
        "lathe_inference_compute_seconds_count{model=\"fashion\"} 1",
        "lathe_model_reloads_total{model=\"fashion\",result=\"failure\"} 1",
        "lathe_model_version{model=\"fashion\"} 2",
        "lathe_inference_count_total{model=\"a\\\"b\"} 0"})
    EXPECT_NE(text.find(std::string(line) + "\n"), std::string::npos) << line << "\n" << text;
  // Every line is a comment or `name{labels} value`.
  EXPECT_TRUE(is_sample_line(R"(a_b{x="1",y="q\"z"} 1.5e-05)"));
  EXPECT_FALSE(is_sample_line(R"(a{x="1} 1)"));
  EXPECT_FALSE(is_sample_line("a{x=1} 1"));
  EXPECT_FALSE(is_sample_line("a 1 2"));
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# ", 0) != 0) {
      EXPECT_TRUE(is_sample_line(line)) << line;
    }
  }
}

}  // namespace
}  // namespace lathe::serve
