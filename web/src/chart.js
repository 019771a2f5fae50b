// Charts: one query over a chosen time range — a series, or a sliding window read as a series
// (from/to, with a step so that a long range stays a few hundred points) — with per-key
// drill-down. Live ranges (the last N minutes) refresh every 2 s.

import { api, resultPath } from './api.js';
import { h, fill, field, num, keyText, time, table, localInputMs, msToInput, setOptions } from './dom.js';
import { state, subscribe } from './live.js';
import { queryShape, ruleQuery } from './model.js';
import { plot } from './plot.js';

const RANGES = [
  ['5min', 'Last 5 minutes', 300000],
  ['15min', 'Last 15 minutes', 900000],
  ['1h', 'Last hour', 3600000],
  ['6h', 'Last 6 hours', 21600000],
  ['24h', 'Last 24 hours', 86400000],
  ['48h', 'Last 48 hours', 172800000],
  ['custom', 'Custom range', 0],
];
const MAX_POINTS = 400;
const MAX_KEYS = 8;
const REFRESH_MS = 2000;

let root;
let sel = { query: '', range: '15min', column: '', key: '' };
let timer = null;
let unsub = null;
let seenKeys = new Map();

export function mount(el) {
  root = el;
  const q = h('select', { id: 'chart-query', onchange: () => { sel.query = q.value; sel.key = ''; sel.column = ''; seenKeys = new Map(); load(); } });
  const range = h('select', { id: 'chart-range', onchange: () => { sel.range = range.value; customBox.hidden = sel.range !== 'custom'; load(); } },
    RANGES.map(([v, t]) => h('option', { value: v }, t)));
  range.value = sel.range;
  const from = h('input', { id: 'chart-from', type: 'datetime-local', step: '1', onchange: load });
  const to = h('input', { id: 'chart-to', type: 'datetime-local', step: '1', onchange: load });
  const customBox = h('div', { class: 'row', hidden: true }, field('From (UTC)', from), field('To (UTC)', to));
  const col = h('select', { id: 'chart-column', onchange: () => { sel.column = col.value; load(); } });
  const key = h('select', { id: 'chart-key', onchange: () => { sel.key = key.value; load(); } });
  fill(
    el,
    h('h2', { id: 'h-chart' }, 'Charts'),
    h('form', { class: 'controls', onsubmit: (e) => { e.preventDefault(); load(); } },
      h('div', { class: 'row' }, field('Query', q), field('Time range', range), field('Column', col), field('Key', key)),
      customBox),
    h('p', { id: 'chart-note', class: 'muted', 'aria-live': 'polite' }),
    h('figure', { class: 'chart' },
      h('div', { id: 'chart-plot', class: 'plot', role: 'img', 'aria-label': 'chart' }),
      h('figcaption', { id: 'chart-caption' })),
    h('div', { id: 'chart-rows', class: 'table-wrap' }),
  );
  const now = Date.now();
  from.value = msToInput(now - 3600000);
  to.value = msToInput(now);
}

export function show(arg = []) {
  if (arg[0]) {
    if (arg[0] !== sel.query) seenKeys = new Map();
    sel.query = arg[0];
    sel.key = arg[1] || '';
    sel.column = '';
  }
  if (!unsub) unsub = subscribe(fillQueries);
  load();
  clearInterval(timer);
  timer = setInterval(() => { if (sel.range !== 'custom') load(); }, REFRESH_MS);
}

export function hide() {
  clearInterval(timer);
  timer = null;
  if (unsub) unsub();
  unsub = null;
}

/** Every query and rule-owned query, with its DSL text. */
function charted(s) {
  return [
    ...s.queries.map((q) => ({ name: q.name, text: q.text, label: q.name })),
    ...s.rules.filter((r) => ruleQuery(r) === `rule:${r.name}`).map((r) => ({ name: `rule:${r.name}`, text: r.text, label: `rule ${r.name}` })),
  ];
}

function fillQueries(s) {
  const q = root.querySelector('#chart-query');
  const list = charted(s);
  const before = q.dataset.options;
  setOptions(q, list.length ? list.map((x) => [x.name, x.label]) : [['', 'no queries yet']]);
  if (!sel.query && list.length) sel.query = list[0].name;
  q.value = sel.query;
  if (before !== q.dataset.options) load();
}

function shapeOf(name) {
  const list = charted(state);
  const q = list.find((x) => x.name === name);
  if (!q) return null;
  const s = queryShape(q.text);
  if (s.kind === 'view' && !s.g) {
    const src = list.find((x) => x.name === s.source);
    s.g = src ? queryShape(src.text).g : undefined;
  }
  return s;
}

function timeRange() {
  if (sel.range === 'custom') {
    return [localInputMs(root.querySelector('#chart-from').value), localInputMs(root.querySelector('#chart-to').value)];
  }
  const span = RANGES.find(([v]) => v === sel.range)[2];
  const now = Date.now();
  return [now - span, now + 1];
}

let loading = 0;
async function load() {
  if (!root || !sel.query) return;
  const token = ++loading;
  const shape = shapeOf(sel.query);
  if (!shape) return;
  const params = {};
  const [from, to] = timeRange();
  if (sel.key) for (const [k, v] of Object.entries(JSON.parse(sel.key))) params[`key.${k}`] = typeof v === 'string' ? v : JSON.stringify(v);
  if (shape.kind !== 'total') {
    if (from === undefined || to === undefined || from >= to) return note('Pick a start before the end.');
    params.from = from;
    params.to = to;
    if (shape.kind !== 'series' && shape.g && (to - from) / shape.g > MAX_POINTS) {
      params.step = `${Math.ceil((to - from) / shape.g / MAX_POINTS) * shape.g}ms`;
    }
  }
  let rows;
  try {
    rows = (await api(resultPath(sel.query, params))).rows || [];
  } catch (e) {
    if (params.step) {
      delete params.step;
      try {
        rows = (await api(resultPath(sel.query, params))).rows || [];
      } catch (e2) {
        return note(e2.message, true);
      }
    } else return note(e.message, true);
  }
  if (token !== loading) return;
  draw(shape, rows, from, to);
}

function note(text, error) {
  const n = root.querySelector('#chart-note');
  n.textContent = text;
  n.className = error ? 'error-text' : 'muted';
}

function numericColumns(rows) {
  const cols = [];
  for (const r of rows) for (const [k, v] of Object.entries(r.values)) if (typeof v === 'number' && !cols.includes(k)) cols.push(k);
  return cols;
}

function draw(shape, rows, from, to) {
  const cols = numericColumns(rows);
  const colSel = root.querySelector('#chart-column');
  if (!sel.column || !cols.includes(sel.column)) sel.column = cols[0] || '';
  setOptions(colSel, cols.map((c) => [c, c]));
  colSel.value = sel.column;
  colSel.title = sel.key ? 'every column is drawn for one key' : '';
  for (const r of rows) seenKeys.set(JSON.stringify(r.key), r.key);
  const keySel = root.querySelector('#chart-key');
  setOptions(keySel, [['', `all keys (up to ${MAX_KEYS})`], ...[...seenKeys.keys()].sort().map((k) => [k, keyText(seenKeys.get(k))])]);
  keySel.value = sel.key;
  const plotEl = root.querySelector('#chart-plot');
  const t = (r) => r.bucket_start ?? r.window_end;
  const kinds = { series: 'series', sliding: 'sliding window read as a series (one row per window end)', view: 'window over a series', total: 'totals per key (no time buckets)' };
  note(`${kinds[shape.kind]}${shape.kind === 'total' ? '' : ` · ${time(from)} to ${time(to)} UTC`} · ${rows.length} rows`);
  let xs;
  let series;
  if (shape.kind === 'total') {
    const keys = rows.map((r) => keyText(r.key));
    xs = keys.map((_, i) => i * 1000);
    series = [{ label: sel.column || 'value', values: rows.map((r) => r.values[sel.column] ?? null) }];
    plot(plotEl, xs, series, { bars: true });
    plotEl.setAttribute('aria-label', `bars of ${sel.column} per key: ${keys.map((k, i) => `${k} ${series[0].values[i]}`).join('; ')}`);
  } else {
    xs = [...new Set(rows.map(t))].sort((a, b) => a - b);
    const idx = new Map(xs.map((x, i) => [x, i]));
    if (sel.key) {
      series = cols.map((c) => {
        const values = xs.map(() => null);
        for (const r of rows) values[idx.get(t(r))] = r.values[c] ?? null;
        return { label: c, values };
      });
    } else {
      const byKey = new Map();
      for (const r of rows) {
        const k = keyText(r.key);
        if (!byKey.has(k)) byKey.set(k, xs.map(() => null));
        byKey.get(k)[idx.get(t(r))] = r.values[sel.column] ?? null;
      }
      series = [...byKey.entries()]
        .map(([label, values]) => ({ label, values, total: values.reduce((a, v) => a + (v || 0), 0) }))
        .sort((a, b) => b.total - a.total)
        .slice(0, MAX_KEYS);
    }
    if (!xs.length) xs = [from, to - 1];
    if (!series.length) series = [{ label: sel.column || 'no rows', values: xs.map(() => null) }];
    plot(plotEl, xs, series, { xRange: [from, to] });
    plotEl.setAttribute('aria-label', `${sel.query}: ${series.map((s) => s.label).join(', ')} over time`);
  }
  const points = series.reduce((a, s) => a + s.values.filter((v) => v !== null).length, 0);
  const max = Math.max(0, ...series.flatMap((s) => s.values.filter((v) => v !== null)));
  plotEl.dataset.points = String(points);
  plotEl.dataset.max = String(max);
  root.querySelector('#chart-caption').textContent = `${sel.query}${sel.key ? ` · ${keyText(JSON.parse(sel.key))}` : ''}: ${points} points, highest ${num(max)}`;
  const last = rows.slice(-20).reverse();
  fill(root.querySelector('#chart-rows'), last.length ? table(
    'Latest rows',
    [
      ['time', (r) => (t(r) !== undefined ? time(t(r)) : '—')],
      ['key', (r) => h('a', { href: `#/chart/${encodeURIComponent(sel.query)}/${encodeURIComponent(JSON.stringify(r.key))}` }, keyText(r.key))],
      ...Object.keys(last[0].values).map((c) => [c, (r) => num(r.values[c])]),
    ],
    last,
    { id: 'chart-table' },
  ) : null);
}
