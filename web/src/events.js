// Event explorer: the stored events in a table, with paging and filters (type, session,
// category, time range) over GET /api/events; types and fields suggested from /api/keys.

import { api } from './api.js';
import { h, fill, field, num, time, localInputMs } from './dom.js';

let root;
let page = 1;

export function mount(el) {
  root = el;
  const input = (id, attrs = {}) => h('input', { id, name: id, ...attrs });
  const limit = h('select', { id: 'ev-limit' }, [20, 50, 100, 500].map((n) => h('option', { value: String(n) }, String(n))));
  const form = h('form', { id: 'events-form', class: 'controls', onsubmit: (e) => { e.preventDefault(); page = 1; load(); } },
    h('div', { class: 'row' },
      field('Event type (comma-separated)', input('ev-type', { list: 'ev-types', autocomplete: 'off' })),
      field('Session', input('ev-session', { autocomplete: 'off' })),
      field('Category', input('ev-category', { list: 'ev-types', autocomplete: 'off' })),
      field('From (UTC)', input('ev-from', { type: 'datetime-local', step: '1' })),
      field('To (UTC)', input('ev-to', { type: 'datetime-local', step: '1' })),
      field('Per page', limit)),
    h('div', { class: 'row' },
      h('button', { type: 'submit', class: 'primary' }, 'Search'),
      h('button', { type: 'button', onclick: () => { form.reset(); page = 1; load(); } }, 'Clear')),
    h('datalist', { id: 'ev-types' }));
  fill(
    el,
    h('h2', { id: 'h-events' }, 'Events'),
    form,
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      h('button', { type: 'button', id: 'ev-prev', onclick: () => { page -= 1; load(); } }, '← Previous'),
      h('span', { id: 'ev-page', 'aria-live': 'polite' }),
      h('button', { type: 'button', id: 'ev-next', onclick: () => { page += 1; load(); } }, 'Next →')),
    h('div', { id: 'events-table', class: 'table-wrap' }),
    h('h3', {}, 'Fields seen'),
    h('div', { class: 'row' }, field('Fields of type', h('select', { id: 'keys-type', onchange: loadKeys }, h('option', { value: '' }, 'all types')))),
    h('div', { id: 'keys-list', class: 'keys' }),
  );
}

export function show() {
  load();
  loadTypes();
}

async function loadTypes() {
  try {
    const k = await api('/api/keys');
    const types = ((k && k.types) || []).map((t) => t.type);
    fill(root.querySelector('#ev-types'), types.map((t) => h('option', { value: t })));
    const sel = root.querySelector('#keys-type');
    const v = sel.value;
    fill(sel, h('option', { value: '' }, 'all types'), types.map((t) => h('option', { value: t }, t)));
    sel.value = v;
    drawKeys(k);
  } catch {
    /* the table shows the error */
  }
}

async function loadKeys() {
  const t = root.querySelector('#keys-type').value;
  try {
    drawKeys(await api(`/api/keys${t ? `?type=${encodeURIComponent(t)}` : ''}`));
  } catch (e) {
    fill(root.querySelector('#keys-list'), h('p', { class: 'error-text' }, e.message));
  }
}

function drawKeys(k) {
  const keys = (k && k.keys) || [];
  fill(root.querySelector('#keys-list'), keys.length ? h('dl', {}, keys.map((x) => [
    h('dt', {}, h('code', {}, x.key), h('span', { class: 'muted' }, ` ${num(x.count)}`)),
    h('dd', {}, (x.values || []).slice(0, 8).map((v) => h('span', { class: 'chip' }, String(v.value), h('span', { class: 'muted' }, ` ${num(v.count)}`)))),
  ])) : h('p', { class: 'muted' }, 'No fields recorded yet.'));
}

function params() {
  const p = new URLSearchParams();
  const v = (id) => root.querySelector(`#${id}`).value.trim();
  p.set('page', String(page));
  p.set('limit', v('ev-limit'));
  if (v('ev-type')) p.set('eventType', v('ev-type'));
  if (v('ev-session')) p.set('session', v('ev-session'));
  if (v('ev-category')) p.set('category', v('ev-category'));
  const from = localInputMs(v('ev-from'));
  const to = localInputMs(v('ev-to'));
  if (from !== undefined) p.set('startDate', String(from));
  if (to !== undefined) p.set('endDate', String(to));
  return p;
}

async function load() {
  if (page < 1) page = 1;
  const out = root.querySelector('#events-table');
  let res;
  try {
    res = await api(`/api/events?${params()}`);
  } catch (e) {
    fill(out, h('p', { class: 'error-text', role: 'alert' }, e.message));
    return;
  }
  const events = res.events || [];
  const pages = Math.max(1, Math.ceil((res.total || 0) / (res.limit || 1)));
  root.querySelector('#ev-page').textContent = `page ${res.page} of ${pages} · ${num(res.total)} events`;
  root.querySelector('#ev-prev').disabled = page <= 1;
  root.querySelector('#ev-next').disabled = page >= pages;
  fill(out, events.length ? h('table', { id: 'events' },
    h('thead', {}, h('tr', {}, ['id', 'time (UTC)', 'type', 'session', 'fields'].map((c) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, events.map((e) => h('tr', { 'data-id': String(e.event_id) },
      h('td', {}, String(e.event_id)),
      h('td', { class: 'nowrap' }, time(e.ts)),
      h('td', {}, h('code', {}, e.type)),
      h('td', {}, e.session_id || ''),
      h('td', { class: 'fields' }, Object.entries(e.fields || {}).map(([k, v]) => h('span', { class: 'chip' }, h('b', {}, k), '=', typeof v === 'string' ? v : JSON.stringify(v)))))))) :
    h('p', { class: 'muted' }, 'No events match.'));
}
