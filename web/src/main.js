// The console's entry: the header (key field, health), hash routing between the views.

import 'uplot/dist/uPlot.min.css';
import './style.css';
import { apiKey, setApiKey, onCall } from './api.js';
import { start, subscribe, refresh } from './live.js';
import { num } from './dom.js';
import * as overview from './overview.js';
import * as chart from './chart.js';
import * as editor from './editor.js';
import * as events from './events.js';
import * as analytics from './analytics.js';
import * as stats from './stats.js';

const views = { overview, chart, editor, events, analytics, stats };
const mounted = new Set();
let current = null;

function route() {
  const [, name = 'overview', ...rest] = (location.hash || '#/overview').split('/');
  const view = views[name] ? name : 'overview';
  const arg = rest.map(decodeURIComponent);
  for (const [n, v] of Object.entries(views)) {
    const el = document.getElementById(`view-${n}`);
    const on = n === view;
    el.hidden = !on;
    if (on && !mounted.has(n)) {
      v.mount(el);
      mounted.add(n);
    }
    if (!on && current === n && v.hide) v.hide();
  }
  document.querySelectorAll('nav a[data-view]').forEach((a) => {
    if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  });
  current = view;
  if (views[view].show) views[view].show(arg);
  document.title = `Weir · ${view[0].toUpperCase()}${view.slice(1)}`;
}

function header() {
  const input = document.getElementById('api-key');
  input.value = apiKey();
  document.getElementById('key-form').addEventListener('submit', (e) => {
    e.preventDefault();
    setApiKey(input.value.trim());
    document.getElementById('banner').hidden = true;
    refresh();
  });
  const banner = document.getElementById('banner');
  onCall((ok, status) => {
    if (status === 401 || status === 403) {
      banner.textContent = apiKey()
        ? `The server refused the API key (HTTP ${status}): enter a valid key above.`
        : 'This server needs an API key: enter it in the field above and press Save.';
      banner.hidden = false;
    }
  });
  const health = document.getElementById('health');
  subscribe((s) => {
    health.className = `health ${s.healthy ? 'ok' : 'down'}`;
    health.textContent = s.healthy
      ? `up · ${num(Math.round(s.rate))} events/s`
      : `unreachable${s.error ? `: ${s.error.message}` : ''}`;
  });
}

header();
start();
window.addEventListener('hashchange', route);
route();
