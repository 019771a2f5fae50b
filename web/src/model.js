// What the console reads from query texts and from /metrics.

const UNITS = [
  [/^(ms|millis|milliseconds?)$/, 1],
  [/^(s|sec|secs|seconds?)$/, 1000],
  [/^(m|min|mins|minutes?)$/, 60000],
  [/^(h|hr|hours?)$/, 3600000],
  [/^(d|days?)$/, 86400000],
  [/^(w|weeks?)$/, 604800000],
];

/** "5min" → 300000; undefined when it is not a duration. */
export function durationMs(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$/i.exec(text || '');
  if (!m) return undefined;
  const unit = UNITS.find(([re]) => re.test(m[2].toLowerCase()));
  return unit ? Number(m[1]) * unit[1] : undefined;
}

/** Drop `--` comments and 'strings' so the patterns below see only the query's structure. */
function strip(text) {
  return text.replace(/'(?:[^']|'')*'/g, "''").replace(/--[^\n]*/g, ' ');
}

/**
 * The time shape of a query from its DSL text: `{kind, g, w, source}` where kind is
 * "sliding" (a window of w advancing every g, read as a series with from/to), "series"
 * (tumbling buckets of g), "view" (a window over another query's series; g comes from the
 * source unless the name carries @g) or "total" (no timeseries: one cumulative row per key).
 */
export function queryShape(text) {
  const t = strip(text || '');
  const ts = /timeseries\s*\(\s*[^,()]+,\s*([^,()]+?)\s*(?:,\s*([^,()]+?)\s*)?\)/i.exec(t);
  if (ts) {
    const g = durationMs(ts[1]);
    const w = ts[2] ? durationMs(ts[2]) : undefined;
    return { kind: w ? 'sliding' : 'series', g, w };
  }
  const view = /\bfrom\s+([A-Za-z_][\w]*)\s*\(\s*([^)]+?)\s*\)/i.exec(t);
  if (view) {
    const at = /^\s*(?:create\s+(?:or\s+replace\s+)?query\s+)?[A-Za-z_]\w*@(\w+)/i.exec(t);
    return { kind: 'view', source: view[1], w: durationMs(view[2]), g: at ? durationMs(at[1]) : undefined };
  }
  return { kind: 'total' };
}

/** The query a rule reads: `rule:<name>` for `AS select` rules, else its `ON` query. */
export function ruleQuery(rule) {
  const on = /\bon\s+([A-Za-z_]\w*)\s+deny\b/i.exec(strip(rule.text || ''));
  return on ? on[1] : `rule:${rule.name}`;
}

/** A rule's condition text (after DENY WHEN), for display. */
export function ruleCondition(rule) {
  const m = /\bdeny\s+when\s+([\s\S]*?)\s*;?\s*$/i.exec(rule.text || '');
  return m ? m[1].replace(/\s+/g, ' ') : '';
}

/** Prometheus text → [{name, labels, value}]. */
export function parseMetrics(text) {
  const out = [];
  for (const line of (text || '').split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

/** Sum of a metric's samples whose labels include `match`. */
export function metricSum(samples, name, match = {}) {
  return samples
    .filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
