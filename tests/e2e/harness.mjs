// A small end-to-end harness: serves a folder on 127.0.0.1, launches the system Chromium with
// playwright-core, records console errors and every request (failing on any to another host).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript',
  '.wasm': 'application/wasm', '.css': 'text/css', '.json': 'application/json',
  '.csv': 'text/csv; charset=utf-8', '.png': 'image/png', '.svg': 'image/svg+xml', '.txt': 'text/plain',
};

// Serves `routes`: URL prefix -> folder, list of folders (first hit wins), or a function
// (req, res, rest) => void. Returns { url, close, hits }.
export async function serve(routes) {
  const hits = [];
  // Paths whose requests wait until the test releases them (see `hold` below), or fail.
  const holds = [];
  const refused = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    hits.push(url.pathname);
    if (refused.some((suffix) => url.pathname.endsWith(suffix))) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('refused by the test');
      return;
    }
    const held = holds.find((h) => url.pathname.endsWith(h.suffix));
    if (held) held.released.then(() => answer(req, res, url));
    else answer(req, res, url);
  });
  const answer = (req, res, url) => {
    for (const [prefix, target] of Object.entries(routes)) {
      if (!url.pathname.startsWith(prefix)) continue;
      let rel = decodeURIComponent(url.pathname.slice(prefix.length));
      if (typeof target === 'function') return target(req, res, rel);
      if (rel === '' || rel.endsWith('/')) rel += 'index.html';
      const file = [target].flat().map((dir) => path.join(dir, rel))
        .find((f) => fs.existsSync(f) && fs.statSync(f).isFile());
      if (!file || rel.includes('..')) break;
      res.writeHead(200, {
        'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
        'content-length': fs.statSync(file).size,
        'access-control-allow-origin': '*',
      });
      fs.createReadStream(file).pipe(res);
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found');
  };
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  // Holds back the requests for paths ending with `suffix` until the function it returns is
  // called (then they are answered, and later ones at once).
  const hold = (suffix) => {
    let release;
    const h = { suffix, released: new Promise((ok) => { release = ok; }) };
    holds.push(h);
    return () => {
      const i = holds.indexOf(h);
      if (i >= 0) holds.splice(i, 1);
      release();
    };
  };
  // Answers 503 to the requests for paths ending with `suffix` until the function it returns is
  // called.
  const refuse = (suffix) => {
    refused.push(suffix);
    return () => {
      const i = refused.indexOf(suffix);
      if (i >= 0) refused.splice(i, 1);
    };
  };
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)), hits, hold, refuse };
}

const BASE_ARGS = [
  '--headless=new', '--no-sandbox', '--disable-dev-shm-usage', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--disable-default-apps', '--disable-quic',
];
export const WEBGPU_ARGS = [
  '--enable-unsafe-webgpu', '--enable-features=Vulkan', '--use-vulkan=swiftshader', '--use-angle=swiftshader',
];
export const NO_WEBGPU_ARGS = ['--disable-features=WebGPU', '--disable-gpu'];

export async function launch(extraArgs) {
  return chromium.launch({ executablePath: '/usr/bin/chromium', args: [...BASE_ARGS, ...extraArgs] });
}

// A page that records console errors, uncaught exceptions and every request.
export async function openPage(browser, origin, viewport = { width: 1280, height: 900 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const log = { errors: [], requests: [], console: [] };
  page.on('console', (m) => {
    log.console.push(`${m.type()}: ${m.text()}`);
    // Resource failures are reported with their URL by the response handler below.
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) log.errors.push(m.text());
  });
  page.on('pageerror', (e) => log.errors.push(`uncaught: ${e.message}`));
  // The engine runs in a worker: its console errors count too.
  page.on('worker', (w) => w.on('console', (m) => {
    log.console.push(`worker ${m.type()}: ${m.text()}`);
    if (m.type() === 'error') log.errors.push(`worker: ${m.text()}`);
  }));
  context.on('request', (r) => log.requests.push(r.url()));
  page.on('response', (r) => {
    if (r.status() >= 400 && !page.allowedFailures?.some((p) => r.url().includes(p))) {
      log.errors.push(`HTTP ${r.status()} for ${r.url()}`);
    }
  });
  page.log = log;
  page.assertPrivate = () => {
    const foreign = log.requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
    if (foreign.length) throw new Error(`requests left the local server: ${foreign.slice(0, 5).join(', ')}`);
  };
  page.assertNoErrors = () => {
    if (log.errors.length) throw new Error(`console errors:\n  ${log.errors.join('\n  ')}`);
  };
  return page;
}

export function assert(cond, message) {
  if (!cond) throw new Error(message);
}

// Runs named async tests in order; prints a line each; returns the number failed.
export async function runTests(tests, only) {
  let failed = 0;
  let ran = 0;
  for (const [name, fn] of tests) {
    if (only && !name.includes(only)) continue;
    ran += 1;
    const t0 = Date.now();
    try {
      await fn();
      console.log(`e2e PASS ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
    } catch (e) {
      failed += 1;
      console.log(`e2e FAIL ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)\n  ${String(e.stack || e).split('\n').join('\n  ')}`);
    }
  }
  return { ran, failed };
}

// A peer's benchmark page (benches/transformersjs*.mjs): transformers.js' dist at /tjs/,
// onnxruntime-web's at /ort/, the model's folder's parent at /models/, `page` at /bench.html,
// opened in headless Chromium without WebGPU; `work(page)` runs once `window.ready` is set, and
// its result is returned once no request has left the local server. DEBUG=1 logs the page's
// requests and console.
// transformers.js as the peer pages set it up (in their module script, after importing `env`):
// models from the page's /models/, onnxruntime-web's wasm from /ort/ (as withPeerPage and
// coldstart serve them), one thread.
export const TJS_ENV = `env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = '/models/';
env.backends.onnx.wasm.wasmPaths = '/ort/';
env.backends.onnx.wasm.numThreads = 1;
`;

export async function withPeerPage({ tjsRoot, modelDir, page }, work) {
  const server = await serve({
    '/tjs/': path.join(tjsRoot, 'node_modules/@huggingface/transformers/dist'),
    '/ort/': path.join(tjsRoot, 'node_modules/onnxruntime-web/dist'),
    '/models/': path.dirname(modelDir),
    '/bench.html': (req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(page); },
  });
  const browser = await launch(NO_WEBGPU_ARGS);
  try {
    const p = await browser.newPage();
    const foreign = [];
    p.on('request', (r) => { if (!r.url().startsWith(server.url)) foreign.push(r.url()); });
    if (process.env.DEBUG) {
      p.on('response', (r) => console.log('response', r.status(), r.url()));
      p.on('requestfailed', (r) => console.log('failed', r.url()));
      p.on('console', (m) => console.log('console', m.text()));
    }
    await p.goto(`${server.url}/bench.html`);
    await p.waitForFunction(() => window.ready);
    const result = await work(p);
    if (foreign.length) throw new Error(`requests left the local server: ${foreign.join(', ')}`);
    return result;
  } finally {
    await browser.close();
    await server.close();
  }
}
