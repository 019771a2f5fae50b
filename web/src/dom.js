// A few DOM and formatting helpers shared by the views.

/** Create an element: h('a', {href: '#'}, 'text', child…). `on*` attributes add listeners. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replace an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Set a <select>'s options ([value, label] pairs) only when they changed, so a refresh
 * neither closes an open list nor moves the keyboard focus. */
export function setOptions(select, options) {
  const sig = JSON.stringify(options);
  if (select.dataset.options === sig) return;
  const v = select.value;
  fill(select, options.map(([value, label]) => h('option', { value }, label)));
  select.dataset.options = sig;
  if (options.some(([value]) => value === v)) select.value = v;
}

/** A labelled control: <div class="field"><label for=id>text</label>control</div>. */
export function field(text, control) {
  return h('div', { class: 'field' }, h('label', { for: control.id }, text), control);
}

/** A number for people: 1234567 → "1,234,567", 0.5 → "0.5". */
export function num(v) {
  if (typeof v !== 'number') return v === null || v === undefined ? '—' : String(v);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return v.toLocaleString('en-US', { maximumFractionDigits: 3 });
}

/** Unix ms → "2026-12-02 02:40:05" (UTC). */
export function time(ms) {
  if (typeof ms !== 'number') return '—';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace('Z', '');
}

/** A group key {seller: "x", n: 1} → "seller=x, n=1" ("(all)" for the empty key). */
export function keyText(key) {
  const parts = Object.entries(key || {}).map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return parts.length ? parts.join(', ') : '(all)';
}

/** A table of objects: columns are [header, row → cell content]. */
export function table(caption, columns, rows, attrs = {}) {
  return h(
    'table',
    attrs,
    caption ? h('caption', {}, caption) : null,
    h('thead', {}, h('tr', {}, columns.map(([c]) => h('th', { scope: 'col' }, c)))),
    h('tbody', {}, rows.map((r) => h('tr', {}, columns.map(([, f]) => h('td', {}, f(r)))))),
  );
}

/** A generic table for an unknown JSON list (decisions, alerts): one column per key seen. */
export function jsonTable(caption, list) {
  const cols = [];
  for (const o of list.slice(0, 200)) for (const k of Object.keys(o || {})) if (!cols.includes(k)) cols.push(k);
  return table(
    caption,
    cols.map((c) => [c, (o) => (typeof o[c] === 'object' ? JSON.stringify(o[c]) : num(o[c]))]),
    list.slice(0, 200),
  );
}

/** Parse a `<input type=datetime-local>` value as UTC → unix ms (or undefined). */
export function localInputMs(v) {
  if (!v) return undefined;
  const t = Date.parse(`${v}Z`);
  return Number.isNaN(t) ? undefined : t;
}

/** Unix ms → a `<input type=datetime-local>` value (UTC). */
export function msToInput(ms) {
  return new Date(ms).toISOString().slice(0, 19);
}
