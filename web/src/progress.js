// A query's status badge and, while it backfills, its progress bar.

import { h, num } from './dom.js';

/** Status cell content for a query definition from GET /api/queries. */
export function statusCell(q) {
  const status = q.status || 'running';
  const badge = h('span', { class: `badge ${status}` }, status);
  if (status !== 'backfilling') {
    return h('div', { class: 'status', 'data-status': status, 'data-query': q.name }, badge, q.reason ? ` ${q.reason}` : null);
  }
  const p = typeof q.progress === 'number' ? q.progress : 0;
  const id = `progress-${q.name.replace(/[^\w-]/g, '_')}`;
  const detail = [
    `${Math.floor(p * 100)}%`,
    q.total !== undefined ? `${num(q.replayed || 0)} of ${num(q.total)} events` : null,
    typeof q.eta_seconds === 'number' ? `about ${num(Math.round(q.eta_seconds * 10) / 10)} s left` : null,
  ].filter(Boolean);
  return h(
    'div',
    { class: 'status', 'data-status': status, 'data-query': q.name },
    badge,
    h('label', { class: 'sr-only', for: id }, `Backfill of ${q.name}`),
    h('progress', { id, max: '1', value: String(p), 'data-query': q.name }),
    h('span', { class: 'progress-text' }, detail.join(' · ')),
  );
}
