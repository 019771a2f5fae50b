// Talking to the Weir API: every call carries `Authorization: Bearer <key>` when a key has
// been saved (it is kept in localStorage, entered once in the header's key field).

const KEY = 'weir.apiKey';

/** The saved API key, or ''. */
export function apiKey() {
  try {
    return localStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

/** Save (or, with '', forget) the API key. */
export function setApiKey(k) {
  if (k) localStorage.setItem(KEY, k);
  else localStorage.removeItem(KEY);
}

/** An error answer of the API: `status`, the message and the JSON body (`line`, `column`…). */
export class ApiError extends Error {
  constructor(status, body, text) {
    super((body && body.error) || text || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

const listeners = new Set();
/** Called with (ok, status) after every call: drives the "needs a key" banner. */
export function onCall(f) {
  listeners.add(f);
}

/**
 * Call the API. `opts.json` sends a JSON body, `opts.text` a text/plain one; the answer is
 * parsed as JSON unless `opts.raw`. Errors throw an ApiError.
 */
export async function api(path, opts = {}) {
  const headers = {};
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (opts.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.json);
  } else if (opts.text !== undefined) {
    headers['Content-Type'] = 'text/plain';
    body = opts.text;
  }
  const method = opts.method || (body !== undefined ? 'POST' : 'GET');
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store' });
  } catch (e) {
    listeners.forEach((f) => f(false, 0));
    throw new ApiError(0, { error: `cannot reach the server (${e.message})` });
  }
  listeners.forEach((f) => f(res.ok, res.status));
  const text = await res.text();
  if (opts.raw && res.ok) return text;
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (!res.ok) throw new ApiError(res.status, parsed, text);
  return parsed;
}

/** Does GET `path` answer 200? (for routes that may not exist yet: decisions, alerts) */
export async function answers(path) {
  try {
    await api(path);
    return true;
  } catch {
    return false;
  }
}

/** The URL of a query's result read, with `params` (an object; `key.F` entries allowed). */
export function resultPath(name, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return `/api/queries/${encodeURIComponent(name)}/result${s ? `?${s}` : ''}`;
}
