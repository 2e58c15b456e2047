'use strict';
// Runs an exported ONNX model in ONNX Runtime (onnxruntime-node, CPU) on the raw inputs that
// tests/onnx_reference.cpp wrote (float32, or int64 where the input's "dtype" says so: a
// language model's tokens), and compares every output with lathe's. For an output marked
// "absolute" (probabilities, regression outputs) every |onnx - lathe| must be <= TOLERANCE; for
// one marked "relative" (logits: unbounded, and float32 sums taken in another order differ by a
// few ulps of their largest terms, not of the result) every |onnx - lathe| must be
// <= TOLERANCE * (1 + the largest |lathe| value in its row).
// Outputs marked "argmax" must pick the same class in every row. Prints the measured
// differences. Exit 0 on agreement, 1 otherwise.
//
//   node tests/onnx_runtime_compare.js ONNXRUNTIME_NODE_DIR REFERENCE_DIR MODEL.onnx [TOLERANCE]
const fs = require('fs');
const path = require('path');

function fail(message) {
  console.error(`onnx_runtime_compare: ${message}`);
  process.exit(1);
}

function readFloats(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length % 4 !== 0) fail(`${file}: ${bytes.length} bytes is not whole float32 values`);
  // Copy into an aligned buffer: a Buffer may start at any offset of its pool.
  const out = new Float32Array(bytes.length / 4);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function readInt64s(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.length % 8 !== 0) fail(`${file}: ${bytes.length} bytes is not whole int64 values`);
  const out = new BigInt64Array(bytes.length / 8);
  new Uint8Array(out.buffer).set(bytes);
  return out;
}

function argmaxRows(values, columns) {
  const rows = values.length / columns;
  const best = new Int32Array(rows);
  for (let r = 0; r < rows; ++r) {
    let b = 0;
    for (let c = 1; c < columns; ++c)
      if (values[r * columns + c] > values[r * columns + b]) b = c;
    best[r] = b;
  }
  return best;
}

async function main() {
  const [ortDir, referenceDir, modelPath, toleranceText] = process.argv.slice(2);
  if (!modelPath) fail('usage: onnx_runtime_compare.js ONNXRUNTIME_NODE_DIR REFERENCE_DIR MODEL.onnx [TOLERANCE]');
  const tolerance = toleranceText === undefined ? 1e-5 : Number(toleranceText);

  let ort;
  try {
    ort = require(path.resolve(ortDir));
  } catch (e) {
    fail(`cannot load onnxruntime-node from ${ortDir} (run scripts/setup.sh): ${e.message}`);
  }
  const reference = JSON.parse(fs.readFileSync(path.join(referenceDir, 'reference.json'), 'utf8'));

  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
  });
  const expectedOutputs = reference.outputs.map((o) => o.name);
  if (JSON.stringify(session.inputNames) !== JSON.stringify([reference.input.name]))
    fail(`model inputs ${JSON.stringify(session.inputNames)}, expected ["${reference.input.name}"]`);
  if (JSON.stringify(session.outputNames) !== JSON.stringify(expectedOutputs))
    fail(`model outputs ${JSON.stringify(session.outputNames)}, expected ${JSON.stringify(expectedOutputs)}`);

  const dtype = reference.input.dtype || 'float32';
  if (dtype !== 'float32' && dtype !== 'int64') fail(`input dtype ${dtype}: float32 or int64`);
  const inputFile = path.join(referenceDir, reference.input.file);
  const input = dtype === 'int64' ? readInt64s(inputFile) : readFloats(inputFile);
  const feeds = {[reference.input.name]: new ort.Tensor(dtype, input, reference.input.shape)};
  const started = Date.now();
  const results = await session.run(feeds);
  console.log(`ONNX Runtime ${ort.env.versions.common}: ${path.basename(modelPath)} on input ` +
              `${dtype} [${reference.input.shape}] in ${Date.now() - started} ms`);

  let ok = true;
  for (const output of reference.outputs) {
    const got = results[output.name];
    const expected = readFloats(path.join(referenceDir, output.file));
    if (JSON.stringify(got.dims.map(Number)) !== JSON.stringify(output.shape)) {
      console.error(`${output.name}: shape [${got.dims}], lathe gives [${output.shape}]`);
      ok = false;
      continue;
    }
    const relative = output.check === 'relative';
    const columns = output.shape[output.shape.length - 1];
    const rowScale = new Float64Array(expected.length / columns).fill(1);
    if (relative)
      for (let i = 0; i < expected.length; ++i)
        rowScale[Math.floor(i / columns)] =
            Math.max(rowScale[Math.floor(i / columns)], 1 + Math.abs(expected[i]));
    let maxDiff = 0, maxScaled = 0, at = 0;
    for (let i = 0; i < expected.length; ++i) {
      const d = Math.abs(got.data[i] - expected[i]);
      const scaled = d / rowScale[Math.floor(i / columns)];
      if (!(d <= maxDiff)) maxDiff = d;  // also catches NaN
      if (!(scaled <= maxScaled)) {
        maxScaled = scaled;
        at = i;
      }
    }
    const pass = maxScaled <= tolerance;
    let line = `${output.name} [${output.shape}]: max abs diff ${maxDiff.toExponential(3)}`;
    if (relative) line += `, max |diff| / (1 + row's max |lathe|) ${maxScaled.toExponential(3)}`;
    line += ` (worst element ${at}: onnx ${got.data[at]}, lathe ${expected[at]}; ` +
            `tolerance ${tolerance}${relative ? ' relative' : ' absolute'})`;
    if (output.argmax) {
      const a = argmaxRows(got.data, columns), b = argmaxRows(expected, columns);
      let same = 0;
      for (let r = 0; r < a.length; ++r) same += a[r] === b[r] ? 1 : 0;
      line += `; argmax identical in ${same}/${a.length} rows`;
      if (same !== a.length) ok = false;
    }
    console.log(line);
    if (!pass) ok = false;
  }
  if (!ok) fail('ONNX Runtime and lathe disagree');
  console.log('ONNX Runtime and lathe agree');
}

main().catch((e) => fail(e.stack || String(e)));
