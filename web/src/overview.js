// Overview: ingest tiles, every query and rule with its live value, status and backfill
// progress. Values refresh with the live state (every second).

import { api, resultPath } from './api.js';
import { h, fill, num, keyText, time } from './dom.js';
import { subscribe, state } from './live.js';
import { metricSum, queryShape, ruleQuery, ruleCondition } from './model.js';
import { statusCell } from './progress.js';

const MAX_ROWS = 5;
let root;
let unsub = null;
let results = new Map();
let busy = false;

export function mount(el) {
  root = el;
  fill(
    el,
    h('h2', { id: 'h-overview' }, 'Overview'),
    h('div', { id: 'tiles', class: 'tiles', role: 'group', 'aria-label': 'Ingest' }),
    h('h3', {}, 'Queries'),
    h('div', { id: 'queries-table', class: 'table-wrap' }),
    h('h3', {}, 'Rules'),
    h('div', { id: 'rules-table', class: 'table-wrap' }),
  );
}

export function show() {
  if (!unsub) unsub = subscribe(update);
}

export function hide() {
  if (unsub) unsub();
  unsub = null;
}

async function update(s) {
  drawTiles(s);
  draw(s);
  if (busy) return;
  busy = true;
  try {
    const names = [...s.queries.map((q) => q.name), ...s.rules.map(ruleQuery)].slice(0, 60);
    const read = await Promise.all(
      [...new Set(names)].map((n) =>
        api(resultPath(n))
          .then((r) => [n, { rows: (r && r.rows) || [] }])
          .catch((e) => [n, { error: e.message }]),
      ),
    );
    results = new Map(read);
    draw(state);
  } finally {
    busy = false;
  }
}

function tile(label, value, id) {
  return h('div', { class: 'tile' }, h('span', { class: 'tile-label', id: `${id}-label` }, label),
    h('output', { class: 'tile-value', id, 'aria-labelledby': `${id}-label` }, value));
}

function drawTiles(s) {
  const m = s.metrics;
  fill(
    root.querySelector('#tiles'),
    tile('Ingest rate', `${num(Math.round(s.rate))}/s`, 'tile-rate'),
    tile('Events accepted (since start)', num(s.accepted), 'tile-accepted'),
    tile('Events in the log', num(metricSum(m, 'weir_log_records')), 'tile-log'),
    tile('Allowed', num(metricSum(m, 'weir_decisions_total', { decision: 'allow' })), 'tile-allow'),
    tile('Denied', num(metricSum(m, 'weir_decisions_total', { decision: 'deny' })), 'tile-deny'),
    tile('Invalid events', num(metricSum(m, 'weir_events_invalid_total')), 'tile-invalid'),
  );
}

/** The live value of a query: its rows now (current window, bucket or total). */
function valueCell(name, backfilling) {
  const r = results.get(name);
  if (backfilling && (!r || r.error)) return h('span', { class: 'muted', 'data-live': name }, 'results once the backfill is done');
  if (!r) return h('span', { class: 'muted' }, '…');
  if (r.error) return h('span', { class: 'error-text' }, r.error);
  if (!r.rows.length) return h('span', { class: 'muted', 'data-live': name }, 'no events in the current window');
  const rows = r.rows.slice(-MAX_ROWS);
  return h(
    'ul',
    { class: 'live', 'data-live': name },
    rows.map((row) =>
      h(
        'li',
        { 'data-key': JSON.stringify(row.key) },
        h('a', { href: `#/chart/${encodeURIComponent(name)}/${encodeURIComponent(JSON.stringify(row.key))}`, class: 'key' }, keyText(row.key)),
        ' ',
        Object.entries(row.values).map(([k, v]) => h('span', { class: 'val' }, h('span', { class: 'col' }, k), ' ', h('b', { 'data-col': k }, num(v)), ' ')),
        row.bucket_start !== undefined ? h('span', { class: 'muted' }, ` bucket ${time(row.bucket_start)}`) : null,
      ),
    ),
    r.rows.length > MAX_ROWS ? h('li', { class: 'muted' }, `and ${r.rows.length - MAX_ROWS} more keys`) : null,
  );
}

function shapeText(q) {
  const s = queryShape(q.text);
  if (s.kind === 'sliding') return `sliding ${fmtDur(s.w)} every ${fmtDur(s.g)}`;
  if (s.kind === 'series') return `series of ${fmtDur(s.g)}`;
  if (s.kind === 'view') return `window ${fmtDur(s.w)} over ${s.source}`;
  return 'total';
}

function fmtDur(ms) {
  if (!ms) return '?';
  for (const [u, n] of [['d', 86400000], ['h', 3600000], ['min', 60000], ['s', 1000]]) if (ms % n === 0) return `${ms / n}${u}`;
  return `${ms}ms`;
}

function draw(s) {
  const qs = s.queries;
  fill(
    root.querySelector('#queries-table'),
    qs.length
      ? h(
          'table',
          { id: 'queries' },
          h('thead', {}, h('tr', {}, ['Query', 'Shape', 'Status', 'Live value', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, qs.map((q) =>
            h('tr', { 'data-query': q.name },
              h('th', { scope: 'row' }, h('code', {}, q.name)),
              h('td', {}, shapeText(q)),
              h('td', {}, statusCell(q)),
              h('td', {}, valueCell(q.name, q.status === 'backfilling')),
              h('td', { class: 'actions' },
                h('a', { href: `#/chart/${encodeURIComponent(q.name)}` }, 'Chart'), ' ',
                h('a', { href: `#/editor/${encodeURIComponent(q.name)}` }, 'Edit'))))),
        )
      : h('p', { class: 'muted' }, 'No queries yet. Create one in the ', h('a', { href: '#/editor' }, 'editor'), '.'),
  );
  fill(
    root.querySelector('#rules-table'),
    s.rules.length
      ? h(
          'table',
          { id: 'rules' },
          h('thead', {}, h('tr', {}, ['Rule', 'Denies when', 'Live value', ''].map((c) => h('th', { scope: 'col' }, c)))),
          h('tbody', {}, s.rules.map((r) =>
            h('tr', { 'data-rule': r.name },
              h('th', { scope: 'row' }, h('code', {}, r.name)),
              h('td', {}, h('code', {}, ruleCondition(r))),
              h('td', {}, valueCell(ruleQuery(r))),
              h('td', { class: 'actions' }, h('a', { href: `#/chart/${encodeURIComponent(ruleQuery(r))}` }, 'Chart'))))),
        )
      : h('p', { class: 'muted' }, 'No rules yet.'),
  );
}
