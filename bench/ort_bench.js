'use strict';
// ONNX Runtime's side of bench/ort_compare.sh: seconds per InferenceSession.run of MODEL at each
// batch size and thread count (intraOpNumThreads, sequential execution, all graph
// optimizations), alternating in rounds with OVERHEAD, a model with the same input and output
// sizes that computes nothing (a Reshape and a Slice), so that the cost of Node's binding (the
// call, copying the input in and the output out) can be subtracted. Prints one JSON line per
// (threads, batch): the medians of the rounds.
//
//   node bench/ort_bench.js ONNXRUNTIME_NODE_DIR MODEL.onnx OVERHEAD.onnx ROUNDS
const ort = require(process.argv[2]);

const [model, overhead] = [process.argv[3], process.argv[4]];
const rounds = Number(process.argv[5] || 7);
const kBatchSeconds = 0.2;

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function secondsPerCall(session, feeds, calls) {
  const start = process.hrtime.bigint();
  for (let i = 0; i < calls; ++i) await session.run(feeds);
  return Number(process.hrtime.bigint() - start) / 1e9 / calls;
}

async function main() {
  for (const threads of [1, 2]) {
    const options = {intraOpNumThreads: threads, interOpNumThreads: 1,
                     executionMode: 'sequential', graphOptimizationLevel: 'all'};
    // The overhead model runs on one thread: a second session with its own pool of threads,
    // spinning after each of its calls, took the cores from the measured one (on 2 vCPUs the
    // CNN's batch-1 run took 180-230 us alternating against 155-165 us alone).
    const sessions = [await ort.InferenceSession.create(model, options),
                      await ort.InferenceSession.create(overhead, {...options, intraOpNumThreads: 1})];
    const input = sessions[0].inputNames[0];
    for (const batch of [1, 1000]) {
      const features = Number(process.env.FEATURES);
      const dims = JSON.parse(process.env.INPUT_DIMS);  // the model's input shape without N
      const data = new Float32Array(batch * features);
      for (let i = 0; i < data.length; ++i) data[i] = (i * 7919 % 256) / 255;
      const feeds = {[input]: new ort.Tensor('float32', data, [batch, ...dims])};
      for (const s of sessions) await s.run(feeds);  // warm up
      const probe = await secondsPerCall(sessions[0], feeds, 3);
      const calls = Math.max(1, Math.round(kBatchSeconds / Math.max(probe, 1e-7)));
      const times = [[], []];
      for (let r = 0; r < rounds; ++r)
        for (const k of [0, 1]) times[k].push(await secondsPerCall(sessions[k], feeds, calls));
      const [run, bindings] = times.map(median);
      console.log(JSON.stringify({side: 'onnxruntime', threads, batch, seconds: run,
                                  overhead_seconds: bindings,
                                  net_seconds: Math.max(run - bindings, 0)}));
    }
  }
}

main().catch((e) => {
  console.error(`ort_bench: ${e.message}`);
  process.exit(1);
});
