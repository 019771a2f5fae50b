// Stats: ingest rate, event counts per type over the last 48 h (GET /api/stats), decision
// counters from /metrics, a check form whose decisions are listed here, and — when the
// server has those routes — recent decisions (GET /api/decisions) and alerts (GET /api/alerts).

import { api, answers } from './api.js';
import { h, fill, field, num, time, keyText, jsonTable } from './dom.js';
import { subscribe } from './live.js';
import { metricSum } from './model.js';
import { plot } from './plot.js';

const RECENT = 'weir.recentDecisions';
const REFRESH_MS = 5000;
let root;
let timer = null;
let unsub = null;

export function mount(el) {
  root = el;
  const ev = h('textarea', { id: 'check-event', rows: '4', spellcheck: 'false' }, '{"type":"neworder","seller":"usedcardealer","amount":10}');
  fill(
    el,
    h('h2', { id: 'h-stats' }, 'Stats'),
    h('h3', {}, 'Ingest rate'),
    h('figure', { class: 'chart' }, h('div', { id: 'rate-plot', class: 'plot', role: 'img', 'aria-label': 'ingest rate, events per second, since this page opened' }),
      h('figcaption', { id: 'rate-caption' })),
    h('h3', {}, 'Events per type, last 48 hours'),
    h('figure', { class: 'chart' }, h('div', { id: 'stats-plot', class: 'plot', role: 'img', 'aria-label': 'events per minute per type' }),
      h('figcaption', { id: 'stats-caption' })),
    h('div', { id: 'stats-table', class: 'table-wrap' }),
    h('h3', {}, 'Decisions'),
    h('p', { id: 'decision-counts' }),
    h('form', { class: 'controls', id: 'check-form', onsubmit: (e) => { e.preventDefault(); check('/api/check'); } },
      field('Event (JSON)', ev),
      h('div', { class: 'row' },
        h('button', { type: 'submit', class: 'primary' }, 'Check'),
        h('button', { type: 'button', onclick: () => check('/api/add_and_check') }, 'Add and check'))),
    h('div', { id: 'check-error', class: 'error-box', role: 'alert', hidden: true }),
    h('div', { id: 'recent-decisions', class: 'table-wrap', 'aria-live': 'polite' }),
    h('section', { id: 'server-decisions', class: 'table-wrap', hidden: true, 'aria-label': 'Recent decisions' }),
    h('section', { id: 'alerts', class: 'table-wrap', hidden: true, 'aria-label': 'Alerts' }),
  );
  drawRecent();
}

export function show() {
  load();
  clearInterval(timer);
  timer = setInterval(load, REFRESH_MS);
  if (!unsub) unsub = subscribe(live);
}

export function hide() {
  clearInterval(timer);
  timer = null;
  if (unsub) unsub();
  unsub = null;
}

function live(s) {
  const rates = s.rates.length ? s.rates : [[Date.now(), 0]];
  const now = Date.now();
  plot(root.querySelector('#rate-plot'), rates.map((r) => r[0]), [{ label: 'events/s', values: rates.map((r) => Math.round(r[1] * 10) / 10) }], { height: 160, xRange: [Math.min(rates[0][0], now - 60000), now] });
  root.querySelector('#rate-caption').textContent = `now ${num(Math.round(s.rate))} events/s · ${num(s.accepted)} accepted since the server started`;
  const m = s.metrics;
  root.querySelector('#decision-counts').textContent =
    `Since the server started: ${num(metricSum(m, 'weir_decisions_total', { decision: 'allow' }))} allowed, ` +
    `${num(metricSum(m, 'weir_decisions_total', { decision: 'deny' }))} denied.`;
}

async function load() {
  try {
    const st = await api('/api/stats');
    const types = Object.entries(st.types || {}).sort((a, b) => b[1].total - a[1].total);
    const starts = [...new Set(types.flatMap(([, t]) => t.buckets.map((b) => b.start)))].sort((a, b) => a - b);
    const idx = new Map(starts.map((x, i) => [x, i]));
    const series = types.slice(0, 8).map(([name, t]) => {
      const values = starts.map(() => null);
      for (const b of t.buckets) values[idx.get(b.start)] = b.count;
      return { label: name, values };
    });
    plot(root.querySelector('#stats-plot'), starts.length ? starts : [Date.now()], series.length ? series : [{ label: 'events', values: [null] }], { xRange: [st.from, st.to] });
    root.querySelector('#stats-caption').textContent = `${num(st.total)} events from ${time(st.from)} to ${time(st.to)} UTC, in ${num(st.granularity_ms / 1000)} s buckets`;
    fill(root.querySelector('#stats-table'), h('table', { id: 'stats-types' }, h('caption', {}, 'Events per type'),
      h('thead', {}, h('tr', {}, ['type', 'events (48 h)', 'latest minute'].map((c) => h('th', { scope: 'col' }, c)))),
      h('tbody', {}, types.map(([name, t]) => {
        const lastB = t.buckets[t.buckets.length - 1];
        return h('tr', {}, h('th', { scope: 'row' }, h('code', {}, name)), h('td', {}, num(t.total)), h('td', {}, lastB ? `${num(lastB.count)} at ${time(lastB.start)}` : '—'));
      }))));
  } catch (e) {
    fill(root.querySelector('#stats-table'), h('p', { class: 'error-text' }, e.message));
  }
  optional('/api/decisions', 'server-decisions', 'Recent decisions', 'decisions');
  optional('/api/alerts', 'alerts', 'Alerts', 'alerts');
}

/** Show a section for a route only if it answers 200 (decisions and alerts may not exist yet). */
async function optional(path, id, title, field_) {
  const el = root.querySelector(`#${id}`);
  if (!(await answers(path))) {
    el.hidden = true;
    return;
  }
  const body = await api(path).catch(() => null);
  const list = Array.isArray(body) ? body : (body && body[field_]) || [];
  fill(el, h('h3', {}, title), list.length ? jsonTable(`${list.length} ${title.toLowerCase()}`, list) : h('p', { class: 'muted' }, 'None yet.'));
  el.hidden = false;
}

function recent() {
  try {
    return JSON.parse(localStorage.getItem(RECENT) || '[]');
  } catch {
    return [];
  }
}

async function check(path) {
  const err = root.querySelector('#check-error');
  err.hidden = true;
  let ev;
  try {
    ev = JSON.parse(root.querySelector('#check-event').value);
  } catch (e) {
    fill(err, `The event is not JSON: ${e.message}`);
    err.hidden = false;
    return;
  }
  try {
    const d = await api(path, { json: ev });
    const list = [{ at: Date.now(), path, event: ev, ...d }, ...recent()].slice(0, 50);
    localStorage.setItem(RECENT, JSON.stringify(list));
    drawRecent();
  } catch (e) {
    fill(err, h('strong', {}, `Error (HTTP ${e.status})`), ' ', e.message);
    err.hidden = false;
  }
}

function drawRecent() {
  const list = recent();
  fill(root.querySelector('#recent-decisions'), list.length ? h('table', { id: 'decisions' },
    h('caption', {}, 'Decisions of checks made from this console'),
    h('thead', {}, h('tr', {}, ['time', 'call', 'decision', 'rules'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, list.map((d) => h('tr', {},
      h('td', { class: 'nowrap' }, time(d.at)),
      h('td', {}, h('code', {}, d.path.replace('/api/', ''))),
      h('td', {}, h('span', { class: `badge ${d.decision}` }, d.decision)),
      h('td', {}, (d.rules || []).map((r) => h('div', {}, h('code', {}, r.rule), ` ${keyText(r.key)}: ${num(r.value)}`,
        r.threshold !== null && r.threshold !== undefined ? ` vs ${num(r.threshold)}` : '', ` (${r.window}) → ${r.decision}`))))))) : null);
}
