'use strict';
// Runs an exported table model (one input per column: float32 or string, [N, 1]) in ONNX Runtime
// (onnxruntime-node, CPU) on the rows of a CSV file, and compares its probabilities and classes
// with what `lathe predict --format json` gave for the same file. Numeric cells that are not
// numbers (NA, empty) are fed as NaN, which the graph imputes; string cells as they are (the
// graph maps the missing-value tokens). Every |onnx - lathe| probability must be <= TOLERANCE
// and every row must get the same class. Prints the measured difference. Exit 0 on agreement.
//
//   node tests/onnx_runtime_table.js ONNXRUNTIME_NODE_DIR MODEL.onnx ROWS.csv LATHE.json [TOLERANCE]
const fs = require('fs');
const path = require('path');

function fail(message) {
  console.error(`onnx_runtime_table: ${message}`);
  process.exit(1);
}

// A CSV with a header and no quoted cells (what the test writes).
function readCsv(file) {
  const lines = fs.readFileSync(file, 'utf8').split(/\r?\n/).filter((line) => line.length > 0);
  const header = lines[0].split(',');
  return { header, rows: lines.slice(1).map((line) => line.split(',')) };
}

async function main() {
  const [ortDir, modelPath, csvPath, lathePath, toleranceText] = process.argv.slice(2);
  if (!lathePath) fail('usage: onnx_runtime_table.js ONNXRUNTIME_NODE_DIR MODEL.onnx ROWS.csv LATHE.json [TOLERANCE]');
  const tolerance = toleranceText === undefined ? 1e-5 : Number(toleranceText);
  let ort;
  try {
    ort = require(path.resolve(ortDir));
  } catch (e) {
    fail(`cannot load onnxruntime-node from ${ortDir} (run scripts/setup.sh): ${e.message}`);
  }
  const session = await ort.InferenceSession.create(modelPath, {
    executionProviders: ['cpu'],
    intraOpNumThreads: 1,
  });
  const table = readCsv(csvPath);
  const n = table.rows.length;
  const feeds = {};
  for (const input of session.inputMetadata) {
    const column = table.header.indexOf(input.name);
    if (column < 0) fail(`${csvPath} has no column '${input.name}'`);
    const cells = table.rows.map((row) => row[column]);
    if (input.type === 'string') {
      feeds[input.name] = new ort.Tensor('string', cells, [n, 1]);
    } else {
      const values = Float32Array.from(cells, (cell) => (/^[-+0-9.eE]+$/.test(cell) ? Number(cell) : NaN));
      feeds[input.name] = new ort.Tensor('float32', values, [n, 1]);
    }
  }
  const results = await session.run(feeds);
  const probabilities = results.probabilities.data;
  const classes = results.probabilities.dims[1];
  const lathe = JSON.parse(fs.readFileSync(lathePath, 'utf8'));
  if (lathe.length !== n) fail(`lathe predicted ${lathe.length} rows, the CSV has ${n}`);
  let worst = 0;
  for (let r = 0; r < n; ++r) {
    const expected = Object.values(lathe[r].probabilities);
    if (expected.length !== classes) fail(`row ${r}: ${expected.length} lathe classes, ${classes} ONNX`);
    let best = 0;
    for (let c = 0; c < classes; ++c) {
      worst = Math.max(worst, Math.abs(probabilities[r * classes + c] - expected[c]));
      if (probabilities[r * classes + c] > probabilities[r * classes + best]) best = c;
    }
    if (best !== lathe[r].class_index)
      fail(`row ${r}: ONNX Runtime picks class ${best}, lathe ${lathe[r].class_index}`);
  }
  console.log(`onnx_runtime_table: ${n} rows, the same class in every row, max |probability diff| ${worst.toExponential(2)} (tolerance ${tolerance})`);
  if (!(worst <= tolerance)) fail(`probabilities differ by ${worst} > ${tolerance}`);
}

main().catch((e) => fail(e.message));
