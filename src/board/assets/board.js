// lathe board: polls the server for the runs and their new points, draws one uPlot chart per
// metric with a line per run, and a table of the runs. Everything comes from this server.
'use strict';

const POLL_MS = 1000;

// Each chart: where its values come from. source 'log' is train_log.jsonl (every log_every
// steps); a run without it falls back to the metrics column named by fallback. raw: never
// smoothed; positive: a value of 0 means none was measured (the evaluation before step 1).
const PANELS = [
  { key: 'train_loss_log', title: 'Training loss', hint: 'every log_every steps (train_log.jsonl)', source: 'log', column: 'loss', fallback: 'train_loss' },
  { key: 'train_loss', title: 'Training loss at evaluations', hint: 'mean over the span; language models: the estimate on the training split', source: 'metrics', column: 'train_loss', positive: true },
  { key: 'val_loss', title: 'Validation loss', source: 'metrics', column: 'val_loss' },
  { key: 'val_accuracy', title: 'Validation accuracy', hint: 'language models: next-token accuracy', source: 'metrics', column: 'val_accuracy', percent: true },
  { key: 'val_rmse', title: 'Validation RMSE', source: 'metrics', column: 'val_rmse' },
  { key: 'val_r2', title: 'Validation R\u00b2', source: 'metrics', column: 'val_r2' },
  { key: 'learning_rate', title: 'Learning rate', hint: 'as scheduled: not smoothed', source: 'log', column: 'learning_rate', fallback: 'learning_rate', raw: true },
  { key: 'throughput', title: 'Throughput', hint: 'examples/s (language models: tokens/s) over training time', source: 'metrics', column: 'throughput', positive: true },
];

const state = {
  runs: new Map(),      // name -> run
  order: [],            // names, sorted
  hidden: new Set(),    // runs toggled off
  xAxis: 'step',
  smoothing: 0.6,
  logScale: false,
  filter: null,         // RegExp or null
  charts: new Map(),    // panel key -> chart
  rootName: '',
  colorCount: 0,
  dirty: true,
  timing: { firstRender: null, lastRender: null, renders: 0 },
};

// ---- data ----------------------------------------------------------------------------------

function emptyColumns() { return { generation: -1, points: 0, columns: {} }; }

function colorFor(index) {
  // Golden-angle hues: neighbours differ, any number of runs.
  const hue = (index * 137.508 + 210) % 360;
  return `hsl(${hue.toFixed(1)}, 70%, ${index % 2 ? 38 : 46}%)`;
}

// Adds a run file's new points (a column with no values comes as null).
function merge(target, update) {
  const fresh = update.generation !== target.generation || update.from === 0;
  if (fresh) target.columns = {};
  const count = update.points - update.from;
  for (const [name, values] of Object.entries(update.columns)) {
    if (fresh && values) { target.columns[name] = values; continue; }
    const column = target.columns[name] || (target.columns[name] = new Array(update.from).fill(null));
    column.length = update.from;
    for (let i = 0; i < count; i++) column.push(values ? values[i] : null);
  }
  target.generation = update.generation;
  target.points = update.points;
}

async function getJson(url) {
  const response = await fetch(url, { cache: 'no-store' });
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status}`);
  return response.json();
}

async function poll() {
  let listing;
  try {
    listing = await getJson('api/runs');
    setConnection('');
  } catch (error) {
    setConnection('board server not answering; retrying');
    return;
  }
  state.rootName = listing.root_name;
  document.getElementById('root').textContent = listing.root + (listing.scan_truncated ? ' (scan stopped early: too many folders)' : '');
  const seen = new Set();
  const fetches = [];
  for (const info of listing.runs) {
    seen.add(info.name);
    let run = state.runs.get(info.name);
    if (!run) {
      run = { name: info.name, color: colorFor(state.colorCount++), metrics: emptyColumns(), log: emptyColumns(), info };
      state.runs.set(info.name, run);
      state.dirty = true;
    }
    if (JSON.stringify(run.info) !== JSON.stringify(info)) state.dirty = true;
    run.info = info;
    const wantMetrics = info.metrics.generation !== run.metrics.generation || info.metrics.points !== run.metrics.points;
    const wantLog = info.log.generation !== run.log.generation || info.log.points !== run.log.points;
    if (wantMetrics || wantLog) fetches.push(fetchRun(run));
  }
  for (const name of [...state.runs.keys()])
    if (!seen.has(name)) { state.runs.delete(name); state.dirty = true; }
  state.order = [...state.runs.keys()].sort();
  await Promise.all(fetches);
}

async function fetchRun(run) {
  const params = new URLSearchParams({
    run: run.name,
    metrics_from: run.metrics.points, metrics_generation: run.metrics.generation,
    log_from: run.log.points, log_generation: run.log.generation,
  });
  try {
    const data = await getJson('api/data?' + params);
    merge(run.metrics, data.metrics);
    merge(run.log, data.log);
    state.dirty = true;
  } catch (error) {
    // The run went away between the listing and this request: the next listing says so.
  }
}

function setConnection(text) { document.getElementById('connection').textContent = text; }

// ---- series --------------------------------------------------------------------------------

function visibleRuns() {
  return state.order.filter(name => !state.hidden.has(name) && matchesFilter(name));
}

function matchesFilter(name) { return !state.filter || state.filter.test(name); }

function displayName(name) { return name === '.' ? state.rootName : name; }

// TensorBoard's smoothing: an exponential moving average, debiased so that early points are not
// pulled towards zero.
function smooth(values, weight) {
  if (weight <= 0) return values;
  const out = new Float64Array(values.length);
  let last = 0, power = 1;  // power = weight^count
  for (let i = 0; i < values.length; i++) {
    last = last * weight + (1 - weight) * values[i];
    power *= weight;
    out[i] = last / (1 - power);
  }
  return out;
}

// The x values of a file's points on the chosen axis.
function xValues(run, file, source) {
  const c = file.columns;
  const n = file.points;
  const xs = new Float64Array(n);  // NaN where a point has no x
  if (state.xAxis === 'step') {
    for (let i = 0; i < n; i++) xs[i] = c.step[i] == null ? NaN : c.step[i];
  } else if (state.xAxis === 'epoch') {
    // An evaluation of a run by epochs ends its epoch: epoch e (0-based) is drawn at e + 1.
    const shift = source === 'metrics' && !run.info.by_iterations ? 1 : 0;
    for (let i = 0; i < n; i++) xs[i] = c.epoch[i] == null ? NaN : c.epoch[i] + shift;
  } else {
    const origin = run.info.origin;
    for (let i = 0; i < n; i++) xs[i] = c.time[i] == null || origin == null ? NaN : c.time[i] - origin;
  }
  return xs;
}

// One run's points for a panel: x and y where both are numbers (and y > 0 on a log scale).
function panelPoints(run, panel) {
  let file = panel.source === 'log' ? run.log : run.metrics;
  let column = panel.column, source = panel.source;
  if (panel.source === 'log' && file.points === 0 && panel.fallback) {
    file = run.metrics; column = panel.fallback; source = 'metrics';
  }
  const ys = file.columns[column];
  if (!ys || file.points === 0) return null;
  const xs = xValues(run, file, source);
  const px = new Float64Array(file.points), py = new Float64Array(file.points);
  const scale = panel.percent ? 100 : 1;
  let n = 0;
  for (let i = 0; i < file.points; i++) {
    const x = xs[i], y = ys[i];
    if (Number.isNaN(x) || y == null || ((state.logScale || panel.positive) && y <= 0)) continue;
    px[n] = x; py[n] = scale * y; n++;
  }
  if (n === 0) return null;
  // Keep x increasing (a resumed log may repeat a step).
  for (let i = 1; i < n; i++) {
    if (px[i] < px[i - 1]) return sortPoints(px.subarray(0, n), py.subarray(0, n));
  }
  return { xs: px.subarray(0, n), ys: py.subarray(0, n) };
}

function sortPoints(px, py) {
  const index = Array.from(px, (_, i) => i).sort((a, b) => px[a] - px[b] || a - b);
  return { xs: Float64Array.from(index, i => px[i]), ys: Float64Array.from(index, i => py[i]) };
}

// ---- charts --------------------------------------------------------------------------------

// What uPlot draws of a line: the points in [lo, hi] (plus one on each side, so the line reaches
// the edges), and where there are more than two a pixel column, only the lowest and highest of
// each column, in order: the same picture from a fraction of the points.
function decimate(xs, ys, lo, hi, columns) {
  let i0 = 0, i1 = xs.length - 1;
  if (lo != null) {
    while (i0 < i1 && xs[i0 + 1] < lo) i0++;
    while (i1 > i0 && xs[i1 - 1] > hi) i1--;
  }
  if (i1 - i0 + 1 <= 2 * columns) return [xs.slice(i0, i1 + 1), ys.slice(i0, i1 + 1)];
  const x0 = xs[i0], width = (xs[i1] - x0) / columns || 1;
  const outX = [], outY = [];
  let bucket = -1, min = 0, max = 0;
  const flush = () => {
    const a = Math.min(min, max), b = Math.max(min, max);
    outX.push(xs[a]); outY.push(ys[a]);
    if (b !== a) { outX.push(xs[b]); outY.push(ys[b]); }
  };
  for (let i = i0; i <= i1; i++) {
    const b = Math.min(columns - 1, Math.floor((xs[i] - x0) / width));
    if (b !== bucket) {
      if (bucket >= 0) flush();
      bucket = b; min = max = i;
    } else {
      if (ys[i] < ys[min]) min = i;
      if (ys[i] > ys[max]) max = i;
    }
  }
  flush();
  // The range's ends stay exact, so the line starts and ends where the data does.
  if (outX[0] !== xs[i0]) { outX.unshift(xs[i0]); outY.unshift(ys[i0]); }
  if (outX[outX.length - 1] !== xs[i1]) { outX.push(xs[i1]); outY.push(ys[i1]); }
  return [outX, outY];
}

function plotData(chart) {
  const columns = Math.max(100, chart.plot ? Math.round(chart.plot.bbox.width / devicePixelRatio) : 600);
  const [lo, hi] = chart.range || [null, null];
  return [null, ...chart.series.map(s => decimate(s.xs, s.ys, lo, hi, columns))];
}

// Shows the x range [lo, hi] (null: everything), with the points of that range.
function showRange(chart, range) {
  chart.range = range;
  chart.plot.setData(plotData(chart), true);
  if (range) chart.plot.setScale('x', { min: range[0], max: range[1] });
}

function formatValue(value, panel) {
  if (value == null || !isFinite(value)) return '\u2013';
  if (panel.percent) return value.toFixed(2) + '%';
  const a = Math.abs(value);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return value.toExponential(3);
  return value.toPrecision(5).replace(/\.?0+$/, m => (m.startsWith('.') ? '' : m));
}

// Axis labels: as many decimals as the spacing of the ticks needs; thousands as k, millions as M.
function formatTicks(ticks, panel, logScale) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0] || 1);
  return ticks.map(t => {
    if (t == null) return '';
    if (logScale) return Math.abs(t) < 1e-3 ? t.toExponential(0) : String(+t.toPrecision(3));
    const decimals = d => Math.max(0, Math.min(6, -Math.floor(Math.log10(d) + 1e-9)));
    if (panel.percent) return t.toFixed(decimals(step)) + '%';
    const a = Math.abs(t);
    if (a >= 1e6) return (t / 1e6).toFixed(decimals(step / 1e6)) + 'M';
    if (a >= 1e4) return (t / 1e3).toFixed(decimals(step / 1e3)) + 'k';
    if (step < 1e-4) return t.toExponential(1);
    return t.toFixed(decimals(step));
  });
}

// The y axis as wide as its longest label.
function axisWidth(u, values) {
  if (!values) return 40;
  // Labels of about 7 px a character, beside 10 px ticks and their gap.
  return 26 + 7 * Math.max(3, ...values.map(v => String(v).length));
}

function formatX(x) {
  if (x == null) return '';
  if (state.xAxis === 'time') return formatDuration(x);
  if (state.xAxis === 'epoch') return 'epoch ' + (Math.round(x * 100) / 100);
  return 'step ' + Math.round(x);
}

function formatDuration(seconds) {
  if (seconds == null || !isFinite(seconds)) return '\u2013';
  const s = Math.max(0, seconds);
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + Math.round(s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.round((s % 3600) / 60) + ' min';
}

function nearestIndex(xs, x) {
  let lo = 0, hi = xs.length - 1;
  if (hi < 0) return null;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] < x) lo = mid + 1; else hi = mid;
  }
  if (lo > 0 && Math.abs(xs[lo - 1] - x) <= Math.abs(xs[lo] - x)) lo--;
  return lo;
}

function chartWidth(element) { return Math.max(300, element.clientWidth - 16); }

function createPanel(panel) {
  const element = document.createElement('div');
  element.className = 'panel';
  element.dataset.panel = panel.key;
  const title = document.createElement('h2');
  title.textContent = panel.title;
  element.appendChild(title);
  if (panel.hint) {
    const hint = document.createElement('p');
    hint.className = 'hint muted';
    hint.textContent = panel.hint;
    element.appendChild(hint);
  }
  const plotHolder = document.createElement('div');
  element.appendChild(plotHolder);
  const values = document.createElement('div');
  values.className = 'values muted';
  values.textContent = '\u00a0';
  element.appendChild(values);
  return { panel, element, plotHolder, values, plot: null, structure: '', range: null, series: [] };
}

// series: [{run, kind: 'raw'|'smoothed', xs, ys}]
function buildPlot(chart, series) {
  if (chart.plot) chart.plot.destroy();
  chart.plot = null;
  const panel = chart.panel;
  const opts = {
    mode: 2,
    width: chartWidth(chart.element),
    height: 230,
    legend: { show: false },
    cursor: {
      drag: { x: true, y: false, setScale: false },
      points: { size: 6 },
      dataIdx: (u, seriesIndex) => {
        if (seriesIndex === 0 || u.cursor.left == null || u.cursor.left < 0) return null;
        const facet = u.data[seriesIndex];
        return nearestIndex(facet[0], u.posToVal(u.cursor.left, 'x'));
      },
    },
    scales: {
      x: { time: false, auto: true },
      y: state.logScale ? { distr: 3, auto: true } : { auto: true },
    },
    axes: [
      { values: (u, ticks) => (state.xAxis === 'time' ? ticks.map(formatDuration) : formatTicks(ticks, {}, false)), size: 36 },
      { values: (u, ticks) => formatTicks(ticks, panel, state.logScale), size: axisWidth },
    ],
    series: [{}],
    hooks: {
      setCursor: [u => showValues(chart, u)],
      setSelect: [u => {
        if (u.select.width < 3) return;
        const range = [u.posToVal(u.select.left, 'x'), u.posToVal(u.select.left + u.select.width, 'x')];
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        showRange(chart, range);
      }],
    },
  };
  for (const s of series) {
    opts.series.push({
      label: s.run.name + (s.kind === 'raw' ? ' (raw)' : ''),
      stroke: s.run.color,
      width: s.kind === 'raw' || series.length > 24 ? 1 : 1.6,
      alpha: s.kind === 'raw' ? 0.22 : 1,
      paths: uPlot.paths.linear(),
      points: { show: false },
      facets: [{ scale: 'x', auto: true, sorted: 1 }, { scale: 'y', auto: true }],
    });
  }
  chart.series = series;
  chart.range = null;
  chart.plotHolder.textContent = '';
  chart.plot = new uPlot(opts, plotData(chart), chart.plotHolder);
  chart.plot.over.addEventListener('dblclick', () => showRange(chart, null));
}

function showValues(chart, u) {
  const left = u.cursor.left;
  if (left == null || left < 0 || chart.series.length === 0) {
    chart.values.textContent = '\u00a0';
    return;
  }
  const x = u.posToVal(left, 'x');
  const slack = 0.02 * Math.abs(u.scales.x.max - u.scales.x.min);  // a run's values end where it does
  const parts = [`<b>${escapeHtml(formatX(x))}</b>`];
  for (const s of chart.series) {
    if (s.kind === 'raw') continue;
    const index = nearestIndex(s.xs, x);
    if (index == null || x < s.xs[0] - slack || x > s.xs[s.xs.length - 1] + slack) continue;
    const rawText = state.smoothing > 0 && !chart.panel.raw ? ` (raw ${formatValue(s.raw[index], chart.panel)})` : '';
    parts.push(`<span><i class="swatch" style="background:${s.run.color}"></i>${escapeHtml(displayName(s.run.name))} ${formatValue(s.ys[index], chart.panel)}${rawText}</span>`);
  }
  chart.values.innerHTML = parts.join(' ');
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// A run's points and smoothed values for a panel, computed again only when they change.
function runSeries(run, panel) {
  const cache = run.cache || (run.cache = {});
  const key = [state.xAxis, state.logScale, run.metrics.generation, run.metrics.points,
    run.log.generation, run.log.points, run.info.origin].join('|');
  let entry = cache[panel.key];
  if (!entry || entry.key !== key) entry = cache[panel.key] = { key, points: panelPoints(run, panel), smoothed: {} };
  if (!entry.points) return null;
  const weight = panel.raw ? 0 : state.smoothing;
  if (!(weight in entry.smoothed)) entry.smoothed = { [weight]: smooth(entry.points.ys, weight) };
  return { points: entry.points, smoothed: entry.smoothed[weight] };
}

// With many runs the faint raw lines would hide the smoothed ones: drawn for up to this many.
const MAX_RUNS_WITH_RAW_LINES = 12;

function renderCharts() {
  const holder = document.getElementById('charts');
  const runs = visibleRuns().map(name => state.runs.get(name));
  const rawLines = state.smoothing > 0 && runs.length <= MAX_RUNS_WITH_RAW_LINES;
  for (const panel of PANELS) {
    const series = [];
    for (const run of runs) {
      const values = runSeries(run, panel);
      if (!values) continue;
      const { xs, ys } = values.points;
      if (rawLines && !panel.raw) series.push({ run, kind: 'raw', xs, ys });
      series.push({ run, kind: 'smoothed', xs, ys: values.smoothed, raw: ys });
    }
    let chart = state.charts.get(panel.key);
    if (series.length === 0) {
      if (chart) { chart.plot && chart.plot.destroy(); chart.element.remove(); state.charts.delete(panel.key); }
      continue;
    }
    if (!chart) {
      chart = createPanel(panel);
      state.charts.set(panel.key, chart);
    }
    holder.appendChild(chart.element);  // keeps PANELS order
    const structure = [state.xAxis, state.logScale, ...series.map(s => s.run.name + ':' + s.kind)].join('|');
    if (structure !== chart.structure || !chart.plot) {
      chart.structure = structure;
      buildPlot(chart, series);
    } else {
      chart.series = series;
      showRange(chart, chart.range);
    }
  }
}

// ---- the runs table ------------------------------------------------------------------------

// Config keys whose values differ between the shown runs that have a config (the run's own
// folder, trainer.output_dir, always differs and is the name already).
function differingKeys(runs) {
  const configs = runs.map(r => r.info.config).filter(c => c && Object.keys(c).length > 0);
  if (configs.length < 2) return [];
  const keys = new Set();
  for (const c of configs) for (const k of Object.keys(c)) keys.add(k);
  keys.delete('trainer.output_dir');
  const differing = [];
  for (const key of keys) {
    const first = JSON.stringify(configs[0][key]);
    if (configs.some(c => JSON.stringify(c[key]) !== first)) differing.push(key);
  }
  return differing.sort();
}

// A failure's whole error; a stop's first clause, the rest (where the checkpoint is) on hover.
function describeMessage(info) {
  if (!info.message || info.status === 'finished') return '';
  const text = String(info.message);
  if (info.status === 'failed') return `<div class="error">${escapeHtml(text)}</div>`;
  const cut = text.indexOf(';');
  const shown = cut > 0 ? text.slice(0, cut) + ' \u2026' : text;
  return `<div class="warn" title="${escapeHtml(text)}">${escapeHtml(shown)}</div>`;
}

function describeBest(info) {
  const best = info.best;
  if (!best) return '\u2013';
  const value = best.metric === 'accuracy' ? (100 * best.value).toFixed(2) + '% acc' : `${best.metric} ${formatValue(best.value, {})}`;
  const when = info.by_iterations ? `step ${best.step}` : `epoch ${best.epoch}`;
  return `${value} <span class="muted">at ${when}</span>`;
}

function describeTest(info) {
  const t = info.test;
  if (!t) return '\u2013';
  if (t.accuracy != null) return `${(100 * t.accuracy).toFixed(2)}% acc <span class="muted">loss ${formatValue(t.loss, {})}</span>`;
  if (t.rmse != null) return `RMSE ${formatValue(t.rmse, {})}, R\u00b2 ${formatValue(t.r2, {})}`;
  if (t.validation_loss != null) return `val loss ${formatValue(t.validation_loss, {})}`;
  return '\u2013';
}

function describeFiles(info) {
  const notes = [];
  for (const [file, label] of [[info.metrics, 'metrics.jsonl'], [info.log, 'train_log.jsonl']]) {
    if (file.skipped > 0)
      notes.push(`${file.skipped} malformed line${file.skipped > 1 ? 's' : ''} of ${label} skipped (line ${file.skipped_lines.join(', ')})`);
    if (file.incomplete) notes.push(`${label}: last line incomplete (being written?)`);
  }
  const count = `${info.metrics.points} evaluations, ${info.log.points} log points`;
  return count + notes.map(n => `<div class="warn">\u26a0 ${escapeHtml(n)}</div>`).join('');
}

function renderTable() {
  const runs = state.order.filter(matchesFilter).map(name => state.runs.get(name));
  const shown = runs.filter(r => !state.hidden.has(r.name));
  const keys = differingKeys(shown);
  state.hparams = keys;
  const anySample = runs.some(r => r.info.sample);
  const head = ['<tr><th>show</th><th>run</th><th>status</th>',
    ...keys.map(k => `<th class="hparam" title="config key that differs between the shown runs">${escapeHtml(k)}</th>`),
    '<th>best validation</th><th>duration</th><th>test</th><th>points</th><th>bundle</th>',
    anySample ? '<th>latest sample</th>' : '', '</tr>'];
  document.querySelector('#runs thead').innerHTML = head.join('');
  const rows = runs.map(run => {
    const info = run.info;
    const hidden = state.hidden.has(run.name);
    const cells = [
      `<td><label><input type="checkbox" class="toggle" data-run="${escapeHtml(run.name)}" ${hidden ? '' : 'checked'}> <i class="swatch" style="background:${run.color}"></i></label></td>`,
      `<td class="name">${escapeHtml(displayName(run.name))}</td>`,
      `<td class="state"><span class="status ${escapeHtml(info.status)}">${escapeHtml(info.status)}</span>` +
        describeMessage(info) + '</td>',
      ...keys.map(k => `<td>${escapeHtml(info.config && k in info.config ? JSON.stringify(info.config[k]) : '\u2013')}</td>`),
      `<td>${describeBest(info)}</td>`,
      `<td>${formatDuration(info.duration)}</td>`,
      `<td>${describeTest(info)}</td>`,
      `<td class="points">${describeFiles(info)}</td>`,
      `<td class="path">${info.bundle ? escapeHtml(info.bundle) : '\u2013'}</td>`,
    ];
    if (anySample)
      cells.push(info.sample ? `<td><details><summary>step ${escapeHtml(info.sample.step)}</summary><pre>${escapeHtml(info.sample.text || '')}</pre></details></td>` : '<td>\u2013</td>');
    return `<tr class="${hidden ? 'hidden-run' : ''}" data-run="${escapeHtml(run.name)}">${cells.join('')}</tr>`;
  });
  // Keep an open sample open across refreshes.
  const open = new Set([...document.querySelectorAll('#runs details[open]')].map(d => d.closest('tr').dataset.run));
  document.querySelector('#runs tbody').innerHTML = rows.join('');
  for (const row of document.querySelectorAll('#runs tbody tr'))
    if (open.has(row.dataset.run)) { const d = row.querySelector('details'); if (d) d.open = true; }
  document.getElementById('empty').hidden = state.runs.size > 0;
}

// ---- wiring --------------------------------------------------------------------------------

function render() {
  if (!state.dirty) return;
  state.dirty = false;
  const begin = performance.now();
  renderCharts();
  renderTable();
  state.timing.renders++;
  // uPlot draws in a microtask: the timestamps are taken once the canvases are drawn.
  setTimeout(() => {
    const now = performance.now();
    if (state.timing.firstRender == null && state.runs.size > 0) {
      state.timing.firstRender = now;  // since the page began loading
      state.timing.firstRenderWork = now - begin;
      state.timing.points = [...state.runs.values()].reduce((n, r) => n + r.metrics.points + r.log.points, 0);
    }
    state.timing.lastRender = now;
  }, 0);
}

function changed() { state.dirty = true; render(); }

function setUp() {
  const smoothing = document.getElementById('smoothing');
  const smoothingValue = document.getElementById('smoothing-value');
  smoothing.addEventListener('input', () => {
    state.smoothing = Number(smoothing.value);
    smoothingValue.textContent = state.smoothing.toFixed(2);
    changed();
  });
  document.getElementById('x-axis').addEventListener('change', e => { state.xAxis = e.target.value; changed(); });
  document.getElementById('log-scale').addEventListener('change', e => { state.logScale = e.target.checked; changed(); });
  const filter = document.getElementById('filter');
  filter.addEventListener('input', () => {
    let pattern = null;
    try {
      pattern = filter.value ? new RegExp(filter.value, 'i') : null;
      filter.setCustomValidity('');
    } catch (error) {
      filter.setCustomValidity('not a regular expression');
      return;
    }
    state.filter = pattern;
    changed();
  });
  document.getElementById('reset-zoom').addEventListener('click', () => {
    for (const chart of state.charts.values()) showRange(chart, null);
  });
  document.querySelector('#runs tbody').addEventListener('change', e => {
    if (!e.target.classList.contains('toggle')) return;
    const name = e.target.dataset.run;
    if (e.target.checked) state.hidden.delete(name); else state.hidden.add(name);
    changed();
  });
  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      for (const chart of state.charts.values())
        chart.plot.setSize({ width: chartWidth(chart.element), height: 230 });
    }, 100);
  });
}

async function loop() {
  await poll();
  render();
  setTimeout(loop, POLL_MS);
}

// What the page draws, for tests and benchmarks (tests/board_browser.py, bench/board_bench.py).
window.board = {
  state,
  inspect() {
    const charts = {};
    for (const [key, chart] of state.charts) {
      charts[key] = chart.series.map(s => ({
        run: s.run.name, kind: s.kind, points: s.ys.length,
        sum: s.ys.reduce((a, b) => a + b, 0), last: s.ys[s.ys.length - 1],
      }));
    }
    return {
      runs: state.order.map(name => {
        const run = state.runs.get(name);
        return { name, status: run.info.status, shown: !state.hidden.has(name) && matchesFilter(name), color: run.color,
          metricsPoints: run.metrics.points, logPoints: run.log.points };
      }),
      charts, hparams: state.hparams || [], timing: state.timing,
    };
  },
};

setUp();
loop();
