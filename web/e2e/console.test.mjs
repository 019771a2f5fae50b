// End-to-end tests of the web console: headless Chromium against a running `weir serve`.
// Run with `npm run e2e` (from web/, after `cargo build`); scripts/web.sh runs them in CI.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startWeir, launch, shotsDir, call } from './harness.mjs';

const SHOTS = shotsDir();
/** Events stored before the backfill test, so that a new query's backfill takes a while. */
const BULK = Number(process.env.WEIR_E2E_BULK || 600000);

let weir;
let browser;
let page;
const requests = [];
const pageErrors = [];

async function shot(name, fullPage = false) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage });
}

async function go(view) {
  await page.goto(`${weir.base}/#/${view}`);
  await page.waitForSelector(`#view-${view.split('/')[0]}:not([hidden])`);
}

/** Replace the editor's text (insertText: no key events, so no completion gets in the way). */
async function typeInEditor(text) {
  await page.click('#editor .cm-content');
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  await page.keyboard.insertText(text);
}

/** The live values the overview shows for a query: {key JSON: {column: text}}. */
function liveValues(name) {
  return page.evaluate((n) => {
    const out = {};
    for (const li of document.querySelectorAll(`#queries tr[data-query="${n}"] li[data-key]`)) {
      out[li.dataset.key] = Object.fromEntries([...li.querySelectorAll('b[data-col]')].map((b) => [b.dataset.col, b.textContent]));
    }
    return out;
  }, name);
}

/** Wait until the overview shows `want` as a query's (or, with `row`, a rule's) live value for `key`. */
async function waitLive(name, key, want, row = `#queries tr[data-query="${name}"]`) {
  const k = JSON.stringify(key);
  await page.waitForFunction(([r, kk, w]) => {
    const li = [...document.querySelectorAll(`${r} li[data-key]`)].find((x) => x.dataset.key === kk);
    if (!li) return false;
    const got = Object.fromEntries([...li.querySelectorAll('b[data-col]')].map((b) => [b.dataset.col, b.textContent]));
    return Object.entries(w).every(([c, v]) => got[c] === v);
  }, [row, k, want]);
  return name ? (await liveValues(name))[k] : want;
}

/** Events per type in the stats table: {type: text of its 48 h count}. */
function statsCounts() {
  return page.locator('#stats-types tbody tr').evaluateAll((rows) => Object.fromEntries(rows.map((r) => [r.cells[0].textContent, r.cells[1].textContent])));
}

describe('web console', { concurrency: false }, () => {
  before(async () => {
    weir = await startWeir();
    browser = await launch();
    page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
    page.on('request', (r) => requests.push({ url: r.url(), auth: r.headers().authorization }));
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  after(async () => {
    if (browser) await browser.close();
    if (weir) await weir.stop();
  });

  it('serves the console from the binary, loading nothing from other hosts', async () => {
    const res = await page.goto(`${weir.base}/`);
    assert.equal(res.status(), 200);
    assert.match(res.headers()['content-security-policy'], /default-src 'self'/);
    await page.waitForSelector('#health.ok');
    assert.match(await page.textContent('#queries-table'), /No queries yet/);
    const foreign = requests.filter((r) => !r.url.startsWith(weir.base) && !r.url.startsWith('data:'));
    assert.deepEqual(foreign, []);
    assert.deepEqual(pageErrors, []);
  });

  it('creates a query in the editor', async () => {
    await go('editor');
    await typeInEditor(
      '-- orders per seller, per minute\nCREATE QUERY orders_per_minute AS\n  SELECT count(*) AS orders, sum(amount) AS sales\n  FROM neworder\n  GROUP BY seller, timeseries(time, 1min);\n',
    );
    await page.keyboard.press('Control+Enter');
    await page.waitForSelector('#statement-results');
    assert.match(await page.textContent('#statement-results'), /create_query\s+orders_per_minute/);
    const q = await call(weir.base, '/api/queries/orders_per_minute');
    assert.equal(q.status, 200);
    assert.equal(q.json.status, 'running');
    await go('overview');
    await page.waitForSelector('#queries tr[data-query="orders_per_minute"] [data-status="running"]');
  });

  it('marks a bad statement at the line and column the API answers, applying nothing', async () => {
    const text = [
      'CREATE QUERY fine AS SELECT count(*) AS n FROM click GROUP BY timeseries(time, 1min);',
      '-- the next one is broken',
      'CREATE QUERY broken AS',
      '  SELECT count(* FROM click;',
    ].join('\n');
    const api = await call(weir.base, '/api/statements', text, { text: true });
    assert.equal(api.status, 400);
    assert.equal(api.json.line, 4);
    await go('editor');
    await typeInEditor(text);
    await page.click('#apply');
    await page.waitForSelector('#editor-error:not([hidden])');
    const msg = await page.textContent('#editor-error-message');
    assert.ok(msg.includes(`line 4, column ${api.json.column}: ${api.json.error}`), msg);
    await page.waitForSelector('#editor .cm-lintRange-error');
    // Where the marker is: its line (0-based index among the editor's lines) and column.
    const at = await page.evaluate(() => {
      const mark = document.querySelector('#editor .cm-lintRange-error');
      const line = mark.closest('.cm-line');
      const lines = [...document.querySelectorAll('#editor .cm-line')];
      const r = document.createRange();
      r.setStart(line, 0);
      r.setEndBefore(mark);
      return { line: lines.indexOf(line) + 1, column: r.toString().length + 1, text: mark.textContent };
    });
    assert.deepEqual({ line: at.line, column: at.column }, { line: api.json.line, column: api.json.column });
    assert.ok(at.text.length > 0);
    assert.ok(await page.isVisible('#editor .cm-lint-marker-error'), 'no error marker in the gutter');
    assert.equal((await call(weir.base, '/api/queries/fine')).status, 404, 'a failed apply applied something');
    await shot('editor');
  });

  it('shows events sent by the test in the live value and in the chart', async () => {
    const created = await call(
      weir.base,
      '/api/statements',
      'CREATE QUERY live_orders AS SELECT count(*) AS orders, sum(amount) AS sales FROM neworder GROUP BY seller, timeseries(time, 1s, 1min)',
      { text: true },
    );
    assert.equal(created.status, 200, created.text);
    await go('overview');
    const ts = Date.now();
    const send = (n, amount) =>
      call(weir.base, '/api/events?wait=durable', { events: Array.from({ length: n }, () => ({ type: 'neworder', ts, seller: 'florist', amount })) });
    assert.equal((await send(3, 10)).status, 200);
    assert.deepEqual(await waitLive('live_orders', { seller: 'florist' }, { orders: '3' }), { orders: '3', sales: '30' });
    // No reload: the value follows new events.
    assert.equal((await send(2, 20)).status, 200);
    assert.deepEqual(await waitLive('live_orders', { seller: 'florist' }, { orders: '5' }), { orders: '5', sales: '70' });
    await call(weir.base, '/api/events?wait=durable', { type: 'neworder', ts, seller: 'bakery', amount: 7 });
    await shot('overview');

    // The sliding window read as a series: its latest window holds every event.
    await go(`chart/live_orders`);
    await page.waitForFunction(() => document.querySelector('#chart-plot')?.dataset.max === '5');
    assert.ok(Number(await page.getAttribute('#chart-plot', 'data-points')) > 0);
    assert.ok(await page.isVisible('#chart-plot canvas'), 'uPlot drew no canvas');
    // Drill down to one key: every column of that key.
    await page.selectOption('#chart-key', JSON.stringify({ seller: 'bakery' }));
    await page.waitForFunction(() => /seller=bakery: .* highest 7\b/.test(document.querySelector('#chart-caption').textContent));
    assert.doesNotMatch(await page.textContent('#chart-table'), /florist/);

    // The tumbling series made in the editor, from the same events.
    await page.selectOption('#chart-query', 'orders_per_minute');
    await page.selectOption('#chart-column', 'sales');
    await page.waitForFunction(() => document.querySelector('#chart-plot')?.dataset.max === '70');
    assert.match(await page.textContent('#chart-table'), /florist/);
    assert.match(await page.textContent('#chart-table'), /bakery/);
    await page.selectOption('#chart-column', 'orders');
    await page.waitForFunction(() => document.querySelector('#chart-plot')?.dataset.max === '5');
    await shot('chart');
  });

  it("draws a backfill's progress bar, which moves and finishes", async () => {
    const now = Date.now();
    const batch = 25000;
    for (let i = 0; i < BULK; i += batch) {
      const events = [];
      for (let j = i; j < Math.min(BULK, i + batch); j++) events.push({ type: 'bulk', ts: now - 1800000 + (j % 1800) * 1000, k: `k${j % 7}` });
      const last = i + batch >= BULK;
      const r = await call(weir.base, `/api/events${last ? '?wait=durable' : ''}`, { events });
      assert.ok(r.status === 200 || r.status === 202, r.text);
    }
    await go('overview');
    await page.evaluate(() => {
      window.__seen = [];
      const look = () => {
        const p = document.querySelector('progress[data-query="bulk_per_key"]');
        if (p) window.__seen.push(Number(p.value));
      };
      window.__timer = setInterval(look, 20);
    });
    const applied = call(weir.base, '/api/statements', 'CREATE QUERY bulk_per_key AS SELECT count(*) AS n FROM bulk GROUP BY k, timeseries(time, 1min)', { text: true });
    await page.waitForSelector('progress[data-query="bulk_per_key"]', { timeout: 60000 });
    await page.waitForFunction(() => window.__seen.some((v) => v > 0 && v < 1), null, { timeout: 60000 }).catch(() => {});
    await shot('backfill');
    const res = await applied;
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.results[0].backfilled, BULK);
    await page.waitForSelector('#queries tr[data-query="bulk_per_key"] [data-status="running"]');
    const seen = await page.evaluate(() => {
      clearInterval(window.__timer);
      return window.__seen;
    });
    const distinct = [...new Set(seen)];
    assert.ok(distinct.some((v) => v > 0 && v < 1), `no progress between 0 and 1 was drawn: ${distinct}`);
    assert.ok(distinct.length >= 2, `the bar did not move: ${distinct}`);
    for (let i = 1; i < seen.length; i++) assert.ok(seen[i] >= seen[i - 1], `progress went back: ${seen[i - 1]} then ${seen[i]}`);
    assert.equal(await page.$('progress[data-query="bulk_per_key"]'), null, 'the bar is still there after the backfill');
    const rows = (await call(weir.base, '/api/queries/bulk_per_key/result?from=0&to=9999999999999')).json.rows;
    assert.equal(rows.reduce((a, r) => a + r.values.n, 0), BULK);
  });

  it('pages and filters the stored events', async () => {
    const sessions = [];
    for (let i = 0; i < 30; i++) {
      sessions.push({ session_id: i % 3 === 0 ? 's-one' : 's-two', category: i % 2 ? 'party' : 'visit', name: 'App', data: { host: 'h', path: `/p${i}` }, timestamp: 1632647700000 + i * 1000 });
    }
    assert.equal((await call(weir.base, '/api/events?wait=durable', { events: sessions })).status, 200);
    await go('events');
    await page.waitForSelector('#events tbody tr');
    const total = (await call(weir.base, '/api/events?limit=1')).json.total;
    assert.match(await page.textContent('#ev-page'), new RegExp(`page 1 of \\d+ · ${total.toLocaleString('en-US')} events`));
    assert.equal(await page.locator('#events tbody tr').count(), 20);
    const firstIds = await page.locator('#events tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
    await page.click('#ev-next');
    await page.waitForFunction(() => /^page 2 of/.test(document.querySelector('#ev-page').textContent));
    const secondIds = await page.locator('#events tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
    assert.equal(secondIds.length, 20);
    assert.equal(secondIds.filter((id) => firstIds.includes(id)).length, 0, 'page 2 repeats page 1');

    // Type filter (datalist suggestions come from /api/keys).
    const types = await page.locator('#ev-types option').evaluateAll((o) => o.map((x) => x.value));
    assert.ok(types.includes('party') && types.includes('bulk'), `suggested types: ${types}`);
    await page.fill('#ev-type', 'party');
    await page.click('#events-form button[type="submit"]');
    await page.waitForFunction(() => /· 15 events$/.test(document.querySelector('#ev-page').textContent));
    const typesShown = await page.locator('#events tbody tr td:nth-child(3)').allTextContents();
    assert.deepEqual([...new Set(typesShown)], ['party']);
    // Session and type together.
    await page.fill('#ev-session', 's-one');
    await page.press('#ev-session', 'Enter');
    await page.waitForFunction(() => /· 5 events$/.test(document.querySelector('#ev-page').textContent));
    assert.deepEqual([...new Set(await page.locator('#events tbody tr td:nth-child(4)').allTextContents())], ['s-one']);
    // Category instead of type, and a time range: the first ten seconds hold visits 0,2,…,8.
    await page.fill('#ev-type', '');
    await page.fill('#ev-session', '');
    await page.fill('#ev-category', 'visit');
    await page.fill('#ev-from', '2021-09-26T09:15:00');
    await page.fill('#ev-to', '2021-09-26T09:15:09');
    await page.click('#events-form button[type="submit"]');
    // The filter before also showed 5 events: wait for this filter's rows, not only the count.
    await page.waitForFunction(() => /· 5 events$/.test(document.querySelector('#ev-page').textContent)
      && [...document.querySelectorAll('#events tbody tr td.fields .chip')].some((c) => c.textContent === 'path=/p0'));
    const paths = await page.locator('#events tbody tr td.fields').evaluateAll((tds) =>
      tds.map((td) => [...td.querySelectorAll('.chip')].find((c) => c.querySelector('b').textContent === 'path')?.textContent));
    assert.deepEqual(paths, ['path=/p0', 'path=/p2', 'path=/p4', 'path=/p6', 'path=/p8']);
    await shot('events');
  });

  it('runs the seed 001 JSON query and draws its funnel', async () => {
    const seed = [
      ['add_to_cart', 'u3', 'c1', 1456606700000], ['product_view', 'u1', 'c1', 1456606801000],
      ['product_view', 'u2', 'c1', 1456606802000], ['add_to_cart', 'u1', 'c1', 1456606803000],
      ['add_to_cart', 'u2', 'c2', 1456606804000], ['product_view', 'u1', 'c2', 1456606805000],
      ['add_to_cart', 'u1', 'c1', 1456606806000],
    ].map(([tag, u, c, ts]) => ({ ts, samplerate: 1, data: { event_tag: tag, user_id: u, item_colour_id: c } }));
    assert.equal((await call(weir.base, '/api/events?wait=durable', { events: seed })).status, 200);
    await go('analytics');
    await page.fill('#fq-from', '2016-02-27T21:00:00');
    await page.fill('#fq-to', '2016-02-27T22:00:00');
    await page.waitForSelector('#fq-keys option[value="item_colour_id"]', { state: 'attached' });
    const keys = await page.locator('#fq-keys option').evaluateAll((o) => o.map((x) => x.value));
    assert.ok(keys.includes('user_id') && keys.includes('item_colour_id'), `suggested fields: ${keys}`);
    await page.click('#fq-run');
    await page.waitForSelector('#funnel-chart');
    const label = await page.getAttribute('#funnel-chart', 'aria-label');
    assert.equal(label, 'Funnel: product_view: 3 events; add_to_cart: 3 events, 2 converted (66.7%)');
    assert.match(await page.textContent('#fq-sets'), /product_view\s*3\s*user_id: 2/);
    await shot('funnels', true);
  });

  it('shows ingest stats, per-type counts and the decisions of checks made here', async () => {
    const rule = await call(weir.base, '/api/statements', "CREATE RULE few_orders AS SELECT count(*) AS orders FROM neworder WHERE seller = 'gardener' GROUP BY seller, timeseries(time, 1s, 1min) DENY WHEN orders > 2", { text: true });
    assert.equal(rule.status, 200, rule.text);
    const order = { type: 'neworder', seller: 'gardener', amount: 1 };
    assert.equal((await call(weir.base, '/api/events?wait=durable', { events: [order, order, order] })).status, 200);
    await go('stats');
    await page.waitForSelector('#stats-types');
    await page.waitForFunction(() => [...document.querySelectorAll('#stats-types tbody tr')].some((r) => r.cells[0].textContent === 'neworder' && r.cells[1].textContent === '9'));
    const counts = await statsCounts();
    assert.equal(counts.bulk, BULK.toLocaleString('en-US'));
    assert.equal(counts.neworder, '9');
    await page.fill('#check-event', JSON.stringify(order));
    await page.click('#check-form button[type="submit"]');
    await page.waitForSelector('#decisions tbody tr');
    const row = await page.textContent('#decisions tbody tr');
    assert.match(row, /deny/);
    assert.match(row, /few_orders seller=gardener: 3 vs 2/);
    // The check's deny began an alert episode (SPEC section 9): the alerts section lists it.
    const alerts = await call(weir.base, '/api/alerts?rule=few_orders');
    assert.equal(alerts.status, 200, alerts.text);
    assert.equal(alerts.json.total, 1, alerts.text);
    await go('overview');
    await go('stats');
    await page.waitForSelector('#alerts:not([hidden])');
    await page.waitForFunction(() => document.querySelector('#alerts').textContent.includes('few_orders'));
    await shot('stats', true);
  });

  it('sends the saved API key on every call', async () => {
    await go('overview');
    await page.fill('#api-key', 'test-key-123');
    await page.press('#api-key', 'Enter');
    await page.reload();
    const from = requests.length;
    await page.waitForSelector('#queries tr[data-query="live_orders"] [data-live]');
    const calls = requests.slice(from).filter((r) => /\/(api|metrics)/.test(r.url));
    assert.ok(calls.length > 0);
    for (const c of calls) assert.equal(c.auth, 'Bearer test-key-123', c.url);
    assert.equal(await page.inputValue('#api-key'), 'test-key-123', 'the key was not kept');
    // The rule made in the stats test shows its live value too.
    await waitLive(null, { seller: 'gardener' }, { orders: '3' }, '#rules tr[data-rule="few_orders"]');
    assert.match(await page.textContent('#rules tr[data-rule="few_orders"]'), /orders > 2/);
    await page.fill('#api-key', '');
    await page.press('#api-key', 'Enter');
  });

  it('is usable by keyboard, with labelled controls, at desktop and phone width', async () => {
    await go('overview');
    await page.reload();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Charts');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-chart:not([hidden])');
    for (const view of ['overview', 'chart', 'editor', 'events', 'analytics', 'stats']) {
      await go(view);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll('input, select, textarea, button, [contenteditable="true"]')]
          .filter((e) => e.offsetParent !== null)
          .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label') && !e.getAttribute('aria-labelledby') && !(e.tagName === 'BUTTON' && e.textContent.trim()))
          .map((e) => e.id || e.outerHTML.slice(0, 80)),
      );
      assert.deepEqual(unlabelled, [], `unlabelled controls in ${view}`);
    }
    await page.setViewportSize({ width: 390, height: 844 });
    for (const view of ['overview', 'chart', 'editor', 'events', 'analytics', 'stats']) {
      await go(view);
      const over = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(over <= 0, `${view} is ${over} px wider than a phone`);
    }
    await go('overview');
    await page.waitForSelector('#queries tr[data-query="live_orders"] [data-live]');
    await shot('phone');
    await page.setViewportSize({ width: 1280, height: 800 });
    assert.deepEqual(pageErrors, []);
  });
});
