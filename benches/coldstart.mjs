// Cold start with a cached model in headless Chromium, without WebGPU and (Tunelab only) with it
// offered (SwiftShader, where the page answers on the CPU-only engine while the WebGPU engine
// loads, which then takes over: its time is printed too): the time from opening the
// page to the first classification shown, when the model is already in the browser's storage (a
// second visit), for Tunelab (its release build: the page, the engine worker, the model read from
// browser storage) and for transformers.js (its pipeline, the ONNX model from its browser cache).
// The model: all-MiniLM-L6-v2's encoder with a two-label head (benches/make_classifier.py), the
// same weights on both sides. Each side: a first visit that downloads and keeps the model, then
// three timed visits in the same browser profile; the medians are printed, with Tunelab's
// milestones.
// Usage (scripts/bench.sh coldstart prepares the build, the model and transformers.js):
//   node benches/coldstart.mjs <dist> <models folder holding minilm-classifier> <transformers.js folder>
import fs from 'node:fs';
import path from 'node:path';
import { serve, launch, NO_WEBGPU_ARGS, WEBGPU_ARGS, TJS_ENV } from '../tests/e2e/harness.mjs';

const [dist, models, tjsRoot] = process.argv.slice(2);
const id = 'minilm-classifier';
const pkg = path.join(tjsRoot, 'node_modules/@huggingface/transformers');
const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version;
const text = 'A gripping, beautifully acted film that stays with you long after the credits.';

const tjsPage = `<!doctype html><meta charset="utf-8"><script type="module">
import { pipeline, env } from '/tjs/transformers.min.js';
${TJS_ENV}
env.useBrowserCache = true;
const classify = await pipeline('text-classification', '${id}', { dtype: 'fp32', device: 'wasm' });
window.loaded = performance.now();
window.result = await classify(${JSON.stringify(text)});
window.done = performance.now();
</script>`;

const server = await serve({
  '/tjs/': path.join(pkg, 'dist'),
  '/ort/': path.join(tjsRoot, 'node_modules/onnxruntime-web/dist'),
  '/models/': models,
  '/tjs.html': (req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(tjsPage); },
  '/': dist,
});
const source = encodeURIComponent(`${server.url}/models/{id}/{file}`);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const since = (page) => page.evaluate(() => performance.now());

// One visit of Tunelab's classify page: load the model by id (from storage after the first
// visit), classify one text; milestones in ms since navigation start.
async function tunelabVisit(context, withWebgpu) {
  const page = await context.newPage();
  page.setDefaultTimeout(300000);
  await page.goto(`${server.url}/?source=${source}#/classify`);
  const picker = page.locator('.model-picker[data-slot="model-classifier"]');
  await picker.locator('input[type="text"]').waitFor();
  const ui = await since(page);
  await page.locator('#backend-status:not([data-backend="probing"])').waitFor();
  const engine = await since(page);
  await picker.locator('input[type="text"]').fill(id);
  await picker.locator('button.load').click();
  await picker.locator(`.loaded[data-loaded="${id}"]`).or(picker.locator('.error')).first().waitFor();
  if (await picker.locator('.error').count()) throw new Error(await picker.locator('.error').textContent());
  const loaded = await since(page);
  await page.locator('#classify-text').fill(text);
  // The engine running when the text is sent answers it (the WebGPU engine takes over only
  // between requests).
  const answered = await page.locator('#backend-status').getAttribute('data-backend');
  await page.locator('#classify-run').click();
  await page.locator('#classify-results .result').first().waitFor();
  const done = await since(page);
  const label = await page.locator('#classify-results .result .score').first().getAttribute('data-label');
  // With WebGPU offered: when the WebGPU engine took over (it may have before the first result).
  let webgpu;
  if (withWebgpu) {
    await page.locator('#backend-status[data-backend="webgpu"]:not([data-upgrade])').waitFor();
    webgpu = await since(page);
  }
  await page.close();
  return { ui, engine, loaded, done, label, answered, webgpu };
}

async function tjsVisit(context) {
  const page = await context.newPage();
  await page.goto(`${server.url}/tjs.html`);
  await page.waitForFunction(() => window.done !== undefined, null, { timeout: 300000 });
  const r = await page.evaluate(() => ({ loaded: window.loaded, done: window.done, label: window.result[0].label }));
  await page.close();
  return r;
}

const sides = [
  ['Tunelab', tunelabVisit, NO_WEBGPU_ARGS, 'CPU (WebGPU off)'],
  [`transformers.js ${version}`, tjsVisit, NO_WEBGPU_ARGS, 'CPU (WebGPU off)'],
  ['Tunelab', tunelabVisit, WEBGPU_ARGS, 'WebGPU offered (SwiftShader)'],
].filter(([, , args]) => !process.env.COLDSTART_CPU_ONLY || args === NO_WEBGPU_ARGS);
try {
  for (const [name, visit, args, where] of sides) {
    const browser = await launch(args);
    try {
      const ua = await (await browser.newPage()).evaluate(() => navigator.userAgent);
      console.log(`browser: ${ua}; ${where}; model ${id} (all-MiniLM-L6-v2 + a 2-label head, f32)`);
      const context = await browser.newContext();
      const withWebgpu = args === WEBGPU_ARGS;
      const first = await visit(context, withWebgpu);
      const runs = [];
      for (let i = 0; i < 3; i++) runs.push(await visit(context, withWebgpu));
      await context.close();
      const m = (k) => median(runs.map((r) => r[k])).toFixed(0);
      let extra = ` (pipeline loaded from the browser cache ${m('loaded')} ms)`;
      if (name === 'Tunelab') {
        extra = ` (UI shown ${m('ui')} ms, engine ready ${m('engine')} ms, model loaded from storage ${m('loaded')} ms; answered on ${runs.map((r) => r.answered).join(', ')}`;
        if (runs[0].webgpu !== undefined) {
          extra += `; the WebGPU engine took over at ${m('webgpu')} ms; first visit: answered on ${first.answered}, the WebGPU engine took over at ${first.webgpu.toFixed(0)} ms`;
        }
        extra += ')';
      }
      console.log(`${name}, ${where}: first visit (download) ${first.done.toFixed(0)} ms; cached model, page open to first result: ${m('done')} ms median of 3 [${runs.map((r) => r.done.toFixed(0)).join(', ')}]${extra}; label ${runs[0].label}`);
    } finally {
      await browser.close();
    }
  }
} finally {
  await server.close();
}
