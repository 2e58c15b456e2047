-- wrk's script for the serving benchmarks (serve_load.sh, http_transport.sh): POSTs the JSON file
-- named by $WRK_BODY on every request and prints one line at the end:
--   RESULT requests req/s p50_ms p99_ms answers>=400 socket_errors
-- No response() callback: with one, wrk parses every answer's headers into a Lua table, CPU taken
-- from the server on a shared machine (about 3% of the throughput, 6 alternating pairs).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local file = assert(io.open(os.getenv("WRK_BODY"), "r"))
wrk.body = file:read("*a")
file:close()

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %.1f %.3f %.3f %d %d\n", summary.requests,
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
