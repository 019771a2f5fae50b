// The console on a server with API keys: the page asks for a key, shows nothing without
// one, and shows the key's tenant's queries (and only those) once it is saved.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWeir, launch, call } from './harness.mjs';

const KEY_A = 'acme-console-key-0123';
const KEY_B = 'beta-console-key-0123';

describe('web console with API keys', { concurrency: false }, () => {
  let weir;
  let browser;
  let page;

  before(async () => {
    weir = await startWeir({ WEIR_API_KEYS: `acme:web:${KEY_A},beta:web:${KEY_B}` });
    browser = await launch();
    page = browser.ctx.pages()[0] || (await browser.ctx.newPage());
    for (const [key, name] of [[KEY_A, 'acme_orders'], [KEY_B, 'beta_orders']]) {
      const r = await call(weir.base, '/api/statements', `CREATE QUERY ${name} AS SELECT count(*) AS n FROM neworder GROUP BY seller`, { text: true, key });
      assert.equal(r.status, 200, r.text);
    }
  });

  after(async () => {
    if (browser) await browser.close();
    if (weir) await weir.stop();
  });

  it('asks for a key, then shows only that key\'s tenant', async () => {
    const res = await page.goto(`${weir.base}/`);
    assert.equal(res.status(), 401);
    await page.waitForSelector('#banner:not([hidden])');
    assert.match(await page.textContent('#banner'), /needs an API key/);
    assert.doesNotMatch(await page.textContent('#queries-table'), /acme_orders|beta_orders/);
    await page.fill('#api-key', KEY_A);
    await page.click('#key-form button');
    await page.waitForSelector('#queries tr[data-query="acme_orders"]');
    assert.doesNotMatch(await page.textContent('#queries-table'), /beta_orders/);
    // The key is kept for the next visit.
    await page.reload();
    await page.waitForSelector('#queries tr[data-query="acme_orders"]');
    assert.equal(await page.evaluate(() => localStorage.getItem('weir.apiKey')), KEY_A);
  });
});
