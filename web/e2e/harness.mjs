// What the end-to-end tests run against: a real `weir serve` (the debug binary, on a free
// port, with a fresh data dir) and Debian's headless Chromium driven by playwright-core.

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root. */
export const ROOT = resolve(here, '..', '..');

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Start Weir (with extra environment `env`); resolves once GET /healthz answers 200. */
export async function startWeir(env = {}) {
  const bin = process.env.WEIR_BIN || join(ROOT, 'target', 'debug', 'weir');
  if (!existsSync(bin)) throw new Error(`no weir binary at ${bin}: run cargo build first (or set WEIR_BIN)`);
  const dir = mkdtempSync(join(tmpdir(), 'weir-console-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const proc = spawn(bin, ['serve', '--http', `127.0.0.1:${port}`, '--data-dir', join(dir, 'data')], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn', ...env },
  });
  let stderr = '';
  proc.stderr.on('data', (d) => {
    stderr = (stderr + d).slice(-4000);
  });
  let exited = null;
  proc.once('exit', (code) => {
    exited = code;
  });
  for (let i = 0; ; i++) {
    if (exited !== null) throw new Error(`weir exited with ${exited} before it was ready:\n${stderr}`);
    try {
      const r = await fetch(`${base}/healthz`);
      if (r.ok) break;
    } catch {
      /* not listening yet */
    }
    if (i > 600) throw new Error(`weir did not answer /healthz within a minute:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    async stop() {
      if (exited === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      rmSync(dir, { recursive: true, force: true });
    },
    stderr: () => stderr,
  };
}

/** The Chromium flags that work on this kind of machine (no sandbox, no background traffic). */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Launch Chromium with a fresh profile. */
export async function launch() {
  const profile = mkdtempSync(join(tmpdir(), 'weir-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
  });
  return {
    ctx,
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Where screenshots go: WEIR_CONSOLE_SHOTS (docs/console to refresh the docs) or web/e2e-out. */
export function shotsDir() {
  const d = process.env.WEIR_CONSOLE_SHOTS ? resolve(ROOT, process.env.WEIR_CONSOLE_SHOTS) : join(ROOT, 'web', 'e2e-out');
  mkdirSync(d, { recursive: true });
  return d;
}

/** A JSON call to the server under test (with `key`, an API key, if given). */
export async function call(base, path, body, { text = false, key = '' } = {}) {
  const headers = { 'Content-Type': text ? 'text/plain' : 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const r = await fetch(`${base}${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : text ? body : JSON.stringify(body),
  });
  const t = await r.text();
  let json = null;
  try {
    json = JSON.parse(t);
  } catch {
    json = null;
  }
  return { status: r.status, json, text: t };
}
