// Funnels: the seed 001 JSON query (POST /api/query), built from a small form — steps by
// event type with an optional field filter, unique and match fields suggested from
// /api/keys — or edited as JSON; the answer's data sets in a table and its funnel drawn.

import { api } from './api.js';
import { h, fill, field, num, localInputMs, msToInput } from './dom.js';

let root;
let keys = [];

export function mount(el) {
  root = el;
  const now = Date.now();
  const input = (id, attrs = {}) => h('input', { id, autocomplete: 'off', oninput: build, ...attrs });
  fill(
    el,
    h('h2', { id: 'h-analytics' }, 'Funnels'),
    h('p', { class: 'muted' }, 'The JSON query of POST /api/query: data sets by event type, unique counts, and an exact_order funnel over them.'),
    h('form', { id: 'funnel-form', class: 'controls', onsubmit: (e) => { e.preventDefault(); run(); } },
      h('div', { class: 'row' },
        field('From (UTC)', input('fq-from', { type: 'datetime-local', step: '1', value: msToInput(now - 86400000) })),
        field('To (UTC)', input('fq-to', { type: 'datetime-local', step: '1', value: msToInput(now + 60000) }))),
      h('div', { class: 'row' },
        field('Step 1 type', input('fq-step1', { list: 'fq-types', value: 'product_view' })),
        field('Step 2 type', input('fq-step2', { list: 'fq-types', value: 'add_to_cart' })),
        field('Step 3 type (optional)', input('fq-step3', { list: 'fq-types' }))),
      h('div', { class: 'row' },
        field('Filter field (optional)', input('fq-fkey', { list: 'fq-keys' })),
        field('Filter value', input('fq-fval', { list: 'fq-values' })),
        field('Unique field', input('fq-unique', { list: 'fq-keys', value: 'user_id' })),
        field('Match fields (comma-separated)', input('fq-match', { list: 'fq-keys', value: 'user_id, item_colour_id' }))),
      h('datalist', { id: 'fq-types' }), h('datalist', { id: 'fq-keys' }), h('datalist', { id: 'fq-values' }),
      field('JSON query (edit freely; Run sends this)', h('textarea', { id: 'fq-json', rows: '7', spellcheck: 'false' })),
      h('div', { class: 'row' }, h('button', { type: 'submit', class: 'primary', id: 'fq-run' }, 'Run'))),
    h('div', { id: 'fq-error', class: 'error-box', role: 'alert', hidden: true }),
    h('div', { id: 'fq-result', class: 'table-wrap', 'aria-live': 'polite' }),
  );
  root.querySelector('#fq-fkey').addEventListener('change', suggestValues);
  build();
}

export async function show() {
  try {
    const k = await api('/api/keys');
    keys = (k && k.keys) || [];
    fill(root.querySelector('#fq-types'), ((k && k.types) || []).map((t) => h('option', { value: t.type })));
    fill(root.querySelector('#fq-keys'), keys.map((x) => h('option', { value: x.key })));
    suggestValues();
  } catch {
    /* suggestions are a help, not a need */
  }
}

function suggestValues() {
  const k = keys.find((x) => x.key === root.querySelector('#fq-fkey').value.trim());
  fill(root.querySelector('#fq-values'), ((k && k.values) || []).map((v) => h('option', { value: String(v.value) })));
}

/** The JSON query the form describes. */
function query() {
  const v = (id) => root.querySelector(`#${id}`).value.trim();
  const steps = ['fq-step1', 'fq-step2', 'fq-step3'].map(v).filter(Boolean);
  const unique = v('fq-unique');
  const filterKey = v('fq-fkey');
  const data = steps.map((type) => ({
    name: type,
    filters: [
      { type: 'eq', key: 'event_tag', value: type },
      ...(filterKey ? [{ type: 'eq', key: filterKey, value: v('fq-fval') }] : []),
    ],
    unique: unique ? [unique] : [],
  }));
  const q = { start: localInputMs(v('fq-from')), end: localInputMs(v('fq-to')), data };
  const names = [...new Set(steps)];
  if (names.length >= 2) {
    q.funnel = { type: 'exact_order', order: steps, match: v('fq-match').split(',').map((s) => s.trim()).filter(Boolean) };
  }
  q.data = names.map((n) => data.find((d) => d.name === n));
  return q;
}

function build() {
  // One data set per line: the whole query stays readable in a few lines.
  const q = query();
  const lines = [
    `{"start": ${JSON.stringify(q.start)}, "end": ${JSON.stringify(q.end)},`,
    ' "data": [',
    q.data.map((d) => `  ${JSON.stringify(d)}`).join(',\n'),
    q.funnel ? ` ],\n "funnel": ${JSON.stringify(q.funnel)}}` : ' ]}',
  ];
  root.querySelector('#fq-json').value = lines.join('\n');
}

async function run() {
  const err = root.querySelector('#fq-error');
  err.hidden = true;
  let q;
  try {
    q = JSON.parse(root.querySelector('#fq-json').value);
  } catch (e) {
    fill(err, `The JSON query does not parse: ${e.message}`);
    err.hidden = false;
    return;
  }
  try {
    draw(await api('/api/query', { json: q }));
  } catch (e) {
    fill(err, h('strong', {}, `Error (HTTP ${e.status})`), ' ', e.message);
    err.hidden = false;
  }
}

function draw(ans) {
  const sets = Object.entries(ans.data || {});
  const steps = (ans.funnel && ans.funnel.steps) || [];
  fill(
    root.querySelector('#fq-result'),
    h('table', { id: 'fq-sets' }, h('caption', {}, 'Data sets'),
      h('thead', {}, h('tr', {}, ['data set', 'count', 'unique'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, sets.map(([name, d]) => h('tr', {}, h('th', { scope: 'row' }, name), h('td', {}, num(d.count)),
        h('td', {}, Object.entries(d.unique || {}).map(([k, n]) => `${k}: ${num(n)}`).join(', ')))))),
    steps.length ? funnel(steps) : null,
  );
}

/** The funnel as horizontal bars: each step's events, and (from step 2) its conversions. */
function funnel(steps) {
  const max = Math.max(1, ...steps.map((s) => s.count));
  const W = 640;
  const rowH = 56;
  const label = 150;
  const svg = `http://www.w3.org/2000/svg`;
  const el = (tag, attrs, text) => {
    const e = document.createElementNS(svg, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const summary = steps.map((s, i) => `${s.name}: ${s.count} events${i ? `, ${s.conversions} converted (${pct(s.conversions, steps[i - 1].count)})` : ''}`).join('; ');
  const chart = el('svg', { viewBox: `0 0 ${W} ${steps.length * rowH + 10}`, role: 'img', 'aria-label': `Funnel: ${summary}`, id: 'funnel-chart', class: 'funnel' });
  steps.forEach((s, i) => {
    const y = i * rowH + 5;
    const wAll = ((W - label - 10) * s.count) / max;
    const conv = i ? s.conversions || 0 : s.count;
    const wConv = ((W - label - 10) * conv) / max;
    chart.append(el('text', { x: 0, y: y + 18, class: 'funnel-name' }, s.name));
    chart.append(el('rect', { x: label, y, width: Math.max(1, wAll), height: 24, class: 'funnel-all' }));
    chart.append(el('rect', { x: label, y, width: Math.max(i ? 0 : 1, wConv), height: 24, class: 'funnel-conv' }));
    chart.append(el('text', { x: label, y: y + 42, class: 'funnel-count' }, i ? `${num(conv)} of ${num(s.count)} converted · ${pct(conv, steps[i - 1].count)} of the step before` : `${num(s.count)} events`));
  });
  return h('figure', { class: 'chart' }, chart, h('figcaption', {}, 'Funnel (exact order). Dark: events that converted; light: all events of the step.'));
}

function pct(a, b) {
  return b ? `${Math.round((1000 * a) / b) / 10}%` : '—';
}
