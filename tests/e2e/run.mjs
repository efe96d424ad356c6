// End-to-end tests: the built app (TUNELAB_DIST) served on 127.0.0.1 with the test models,
// driven in headless Chromium (with WebGPU through SwiftShader, or without WebGPU).
// Usage: TUNELAB_DIST=<trunk dist> node tests/e2e/run.mjs [name filter]
import fs from 'node:fs';
import zlib from 'node:zlib';
import path from 'node:path';
import os from 'node:os';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { serve, launch, openPage, assert, runTests, WEBGPU_ARGS, NO_WEBGPU_ARGS } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const dist = process.env.TUNELAB_DIST || path.join(root, 'dist');
const models = process.env.TUNELAB_MODELS || path.join(os.homedir(), '.cache/tunelab/models');
const out = path.join(here, 'out');
fs.mkdirSync(out, { recursive: true });
assert(fs.existsSync(path.join(dist, 'index.html')), `no build at ${dist}: run trunk build first`);
assert(fs.existsSync(path.join(models, 'all-MiniLM-L6-v2/model.safetensors')), `no all-MiniLM-L6-v2 in ${models}: run scripts/setup-test.sh`);

const server = await serve({
  '/models/': [path.join(root, 'tests/fixtures/models'), models],
  // A "mirror" that answers every file with an HTML page (a login or error page).
  '/html-mirror/': (req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<!DOCTYPE html><html><body>Sign in</body></html>'); },
  // A mirror announcing a 3.3 GB model.safetensors (as gpt2-large's), sending a few bytes, then
  // stalling: the app must refuse it on the headers, before reading or allocating.
  // A source whose one model has Qwen3-0.6B's config.json (and nothing else: a request for any
  // other file is recorded): on the CPU the app must refuse it on its config, with the numbers.
  '/big-lm/': (req, res, rel) => {
    const cors = { 'access-control-allow-origin': '*' };
    if (rel === 'qwen3-0.6b/config.json') {
      res.writeHead(200, { ...cors, 'content-type': 'application/json' });
      res.end(JSON.stringify({
        architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', vocab_size: 151936, hidden_size: 1024,
        intermediate_size: 3072, head_dim: 128, num_hidden_layers: 28, num_attention_heads: 16,
        num_key_value_heads: 8, max_position_embeddings: 40960, rms_norm_eps: 1e-6, rope_theta: 1000000,
        tie_word_embeddings: true, torch_dtype: 'bfloat16', bos_token_id: 151643, eos_token_id: 151645,
      }));
      return;
    }
    res.writeHead(404, cors);
    res.end();
  },
  '/huge-mirror/': (req, res, rel) => {
    const cors = { 'access-control-allow-origin': '*' };
    if (rel.endsWith('/model.safetensors')) {
      res.writeHead(200, { ...cors, 'content-type': 'application/octet-stream', 'content-length': '3300000000' });
      res.write(Buffer.alloc(1024));
      setTimeout(() => res.destroy(), 5000);
      return;
    }
    const file = path.join(root, 'tests/fixtures/models', rel);
    if (!fs.existsSync(file)) { res.writeHead(404, cors); res.end(); return; }
    res.writeHead(200, { ...cors, 'content-type': 'application/octet-stream' });
    res.end(fs.readFileSync(file));
  },
  // A mirror with only config.json files (the fixtures', and an unsupported model's): any other
  // file asked for answers 500, so that a test sees what was fetched.
  '/config-only/': (req, res, rel) => {
    const cors = { 'access-control-allow-origin': '*' };
    const [id, file] = rel.split('/');
    const odd = { mistral: { model_type: 'mistral', architectures: ['MistralForCausalLM'] } };
    const fixture = path.join(root, 'tests/fixtures/models', id, 'config.json');
    if (file !== 'config.json' || !(odd[id] || fs.existsSync(fixture))) { res.writeHead(500, cors); res.end(); return; }
    res.writeHead(200, { ...cors, 'content-type': 'application/json' });
    res.end(odd[id] ? JSON.stringify(odd[id]) : fs.readFileSync(fixture));
  },
  // A mirror that gzips every file (content-length is then the compressed size).
  '/gzip-mirror/': (req, res, rel) => {
    const cors = { 'access-control-allow-origin': '*' };
    const file = path.join(root, 'tests/fixtures/models', rel);
    if (!fs.existsSync(file)) { res.writeHead(404, cors); res.end(); return; }
    const body = zlib.gzipSync(fs.readFileSync(file));
    res.writeHead(200, { ...cors, 'content-type': 'application/octet-stream', 'content-encoding': 'gzip', 'content-length': body.length });
    res.end(body);
  },
  '/': dist,
});
const source = encodeURIComponent(`${server.url}/models/{id}/{file}`);
const T = 180_000; // generous: SwiftShader WebGPU and wasm CPU are slow

const golden = (name) => JSON.parse(fs.readFileSync(path.join(root, `tests/fixtures/golden/${name}.golden.json`), 'utf8'));
const softmax = (row) => { const m = Math.max(...row); const e = row.map((x) => Math.exp(x - m)); const s = e.reduce((a, b) => a + b); return e.map((x) => x / s); };

async function withPage(args, viewport, fn) {
  const browser = await launch(args);
  try {
    const page = await openPage(browser, server.url, viewport);
    page.setDefaultTimeout(T);
    try {
      await fn(page);
    } catch (e) {
      // What the page showed, for the failure report.
      await page.screenshot({ path: path.join(out, `FAILED-${Date.now()}.png`), fullPage: true }).catch(() => {});
      const status = await page.locator('#backend-status').textContent().catch(() => '?');
      const errors = await page.locator('.error').allTextContents().catch(() => []);
      throw new Error(`${e.message}\n  status line: ${status}\n  errors shown: ${JSON.stringify(errors)}\n  console: ${page.log.console.slice(-8).join(' | ')}`);
    }
    page.assertNoErrors();
    page.assertPrivate();
  } finally {
    await browser.close();
  }
}

// The engine's backend once the page settled: with WebGPU offered, after the WebGPU engine took
// over from the CPU-only one it starts on (or was held back).
async function backend(page) {
  const status = page.locator('#backend-status:not([data-backend="probing"]):not([data-upgrade="loading"])');
  await status.waitFor();
  return { kind: await status.getAttribute('data-backend'), text: (await status.textContent()).trim() };
}

const picker = (page, slot) => page.locator(`.model-picker[data-slot="model-${slot}"]`);

async function loadModel(page, slot, id) {
  const p = picker(page, slot);
  await p.locator('input[type="text"]').fill(id);
  await p.locator('button.load').click();
  await p.locator(`.loaded[data-loaded="${id}"]`).or(p.locator('.error')).first().waitFor();
  const err = p.locator('.error');
  if (await err.count()) throw new Error(`loading ${id} failed: ${await err.textContent()}`);
}

// The Fine-tune page with tiny-bert as the base model and `csv` read as the training data.
async function fineTuneTinyBert(page, csv) {
  // A base model's optional sentence-transformers file: tiny-bert has none, a 404 is expected.
  page.allowedFailures = ['/models/tiny-bert/modules.json'];
  await page.goto(`${server.url}/?source=${source}#/fine-tune`);
  await backend(page);
  await loadModel(page, 'base-model', 'tiny-bert');
  await page.locator('#dataset-file').setInputFiles(csv);
  await page.locator('#dataset-preview').waitFor();
}

// A CSV of `pairs` good and bad film rows (text,label), written to out/<name>.csv.
function filmCsv(name, pairs) {
  const rows = [['text', 'label']];
  for (let i = 0; i < pairs; i++) rows.push([`a good film number ${i}`, 'positive'], [`a bad film number ${i}`, 'negative']);
  const csv = path.join(out, `${name}.csv`);
  fs.writeFileSync(csv, rows.map((r) => r.join(',')).join('\n') + '\n');
  return csv;
}

async function scoresOf(result) {
  return result.locator('.score').evaluateAll((els) => els.map((e) => ({ label: e.dataset.label, score: Number(e.dataset.score) })));
}

async function shoot(page, name) {
  await page.screenshot({ path: path.join(out, `${name}.png`), fullPage: true });
}

// RFC 4180 records (quoted fields may hold commas, quotes and newlines).
function csvRecords(text) {
  const records = [];
  let field = '', record = [], quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; }
      else if (c === '"') quoted = false;
      else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { record.push(field); field = ''; }
    else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      record.push(field); field = '';
      if (record.some((f) => f !== '')) records.push(record);
      record = [];
    } else field += c;
  }
  if (field || record.length) { record.push(field); records.push(record); }
  return records;
}

const tests = [
  ['shell: WebGPU detected (SwiftShader), every page reachable, screenshots', async () => {
    await withPage(WEBGPU_ARGS, { width: 1280, height: 900 }, async (page) => {
      await page.goto(`${server.url}/?source=${source}`);
      const { kind, text } = await backend(page);
      assert(kind === 'webgpu', `expected WebGPU, the status line says: ${text}`);
      assert(/^Backend: WebGPU \(.+\)$/.test(text), `status line: ${text}`);
      // The CPU-only engine started first (the page answers on it while the rest downloads),
      // then the engine with WebGPU, which took over. Their wasm downloads run side by side, so
      // which request goes out first is up to the browser: the engines' start order is that of
      // their loader scripts.
      const wasm = page.log.requests.filter((u) => u.endsWith('.wasm')).map((u) => u.split('/').pop());
      assert(wasm.includes('worker_cpu_bg.wasm') && wasm.includes('worker_bg.wasm'), `wasm fetched: ${wasm}`);
      const engines = page.log.requests.map((u) => /engine_loader\.js\?engine=(\w+)/.exec(u)?.[1]).filter(Boolean);
      assert(engines[0] === 'worker_cpu' && engines.includes('worker'), `engines started: ${engines}`);
      for (const [name, slug] of [['Classify', 'classify'], ['Fine-tune', 'fine-tune'], ['Prompt', 'prompt'], ['Similarity', 'similarity'], ['Models', 'models']]) {
        await page.getByRole('link', { name, exact: true }).click();
        await page.locator(`main[data-page="${slug}"] h1:text-is("${name}")`).waitFor();
        await shoot(page, `desktop-${slug}`);
      }
      console.log(`  ${text}`);
    });
  }],
  ['shell: CPU fallback without WebGPU, phone-width screenshots', async () => {
    await withPage(NO_WEBGPU_ARGS, { width: 390, height: 844 }, async (page) => {
      await page.goto(`${server.url}/?source=${source}`);
      const { kind, text } = await backend(page);
      assert(kind === 'cpu', `expected the CPU fallback, the status line says: ${text}`);
      assert(/^Backend: CPU \(.+\)( · \d+ engine workers)?$/.test(text), `status line: ${text}`);
      // Without navigator.gpu the page starts the CPU-only engine (a third of the download) and
      // never fetches the WebGPU build; its helper engines run the same script.
      const wasm = page.log.requests.filter((u) => u.endsWith('.wasm')).map((u) => u.split('/').pop());
      assert(wasm.includes('worker_cpu_bg.wasm') && !wasm.includes('worker_bg.wasm'), `wasm fetched: ${wasm}`);
      for (const slug of ['classify', 'fine-tune', 'prompt', 'similarity', 'models']) {
        await page.goto(`${server.url}/?source=${source}#/${slug}`);
        await page.locator(`main[data-page="${slug}"]`).waitFor();
        await shoot(page, `phone-${slug}`);
      }
      console.log(`  ${text}`);
    });
  }],
  ['engine: the page answers on the CPU-only engine while the WebGPU engine loads; that one takes over with the stored models, or when asked, dropping what it cannot reload; training asked for meanwhile waits for it; one that cannot load says why', async () => {
    const g = golden('tiny-bert');
    const want = [0, 1].map((i) => softmax(g.logits[i]));
    const classify = async (page, marker) => {
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(`${g.texts[0]}\n${g.texts[1]}\n${marker}`);
      await page.locator('#classify-run').click();
      const result = page.locator('#classify-results .result', { has: page.locator('.text', { hasText: marker }) });
      await result.waitFor();
      const results = page.locator('#classify-results .result');
      for (let i = 0; i < 2; i++) {
        for (const s of await scoresOf(results.nth(i))) {
          const w = want[i][s.label === 'NEGATIVE' ? 0 : 1];
          assert(Math.abs(s.score - w) < 1e-3, `${marker}, text ${i} ${s.label}: shown ${s.score}, engine ${w}`);
        }
      }
    };
    const status = (page, selector) => page.locator(`#backend-status${selector}`);
    // The WebGPU engine's wasm is held back by the server: the page works on the CPU-only one.
    let release = server.hold('/worker_bg.wasm');
    try {
      await withPage(WEBGPU_ARGS, undefined, async (page) => {
        await page.goto(`${server.url}/?source=${source}#/classify`);
        await status(page, '[data-backend="cpu"][data-upgrade="loading"]').waitFor();
        const text = (await page.locator('#backend-status').textContent()).trim();
        assert(/^Backend: CPU, while the WebGPU engine loads( · \d+ engine workers)?$/.test(text), `status line: ${text}`);
        await loadModel(page, 'classifier', 'tiny-bert');
        await classify(page, 'on the CPU-only engine');
        release();
        // It takes over by itself: the classifier (kept in browser storage) is loaded in it
        // first, so nothing shows unloaded meanwhile.
        await status(page, '[data-backend="webgpu"]:not([data-upgrade])').waitFor();
        assert(await picker(page, 'classifier').locator('.loaded[data-loaded="tiny-bert"]').count() === 1, 'the classifier is still loaded');
        assert(await page.locator('#engine-notice').count() === 0, 'nothing to say: nothing was lost');
        await classify(page, 'on the WebGPU engine');
        const wasm = page.log.requests.filter((u) => u.endsWith('.wasm')).map((u) => u.split('/').pop());
        assert(wasm.indexOf('worker_cpu_bg.wasm') >= 0 && wasm.indexOf('worker_cpu_bg.wasm') < wasm.indexOf('worker_bg.wasm'), `wasm fetched: ${wasm}`);
      });
      // A model read from files on disk cannot be reloaded by another engine: the WebGPU engine
      // waits, says why, and takes over when asked, saying what to choose again.
      const zipPath = path.join(out, 'tiny-bert-upgrade.zip');
      fs.rmSync(zipPath, { force: true });
      execFileSync('python3', ['-c', `
import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[2], 'w') as z:
    for f in sorted(pathlib.Path(sys.argv[1]).iterdir()):
        z.write(f, f.name)
`, path.join(root, 'tests/fixtures/models/tiny-bert'), zipPath]);
      release = server.hold('/worker_bg.wasm');
      await withPage(WEBGPU_ARGS, undefined, async (page) => {
        page.allowedFailures = ['/models/tiny-bert/modules.json'];
        await page.goto(`${server.url}/?source=${source}#/classify`);
        await status(page, '[data-backend="cpu"][data-upgrade="loading"]').waitFor();
        const p = picker(page, 'classifier');
        await p.locator('input.local-files').setInputFiles(zipPath);
        await p.locator('.loaded[data-loaded="tiny-bert-upgrade"]').or(p.locator('.error')).first().waitFor();
        if (await p.locator('.error').count()) throw new Error(`loading the zip failed: ${await p.locator('.error').textContent()}`);
        release();
        await status(page, '[data-backend="cpu"][data-upgrade="held"]').waitFor();
        const why = await page.locator('#upgrade-notice').textContent();
        assert(/takes over when you switch: the classifier "tiny-bert-upgrade" was read from files on this computer/.test(why), `the notice: ${why}`);
        await classify(page, 'held on the CPU-only engine');
        await page.locator('#use-webgpu').click();
        await status(page, '[data-backend="webgpu"]:not([data-upgrade])').waitFor();
        const notice = await page.locator('#engine-notice').textContent();
        assert(/The WebGPU engine took over\. It could not reload the classifier "tiny-bert-upgrade" \(read from files on this computer\): choose it again\./.test(notice), `the notice: ${notice}`);
        assert(await p.locator('.loaded').count() === 0, 'the classifier shows as not loaded');
        await loadModel(page, 'classifier', 'tiny-bert');
        await classify(page, 'after the switch');
      });
      // Training asked for while the WebGPU engine loads waits for it, and runs on it with the
      // data file given again (on the CPU-only engine its model would hold the switch back).
      const csv = filmCsv('upgrade', 4);
      release = server.hold('/worker_bg.wasm');
      await withPage(WEBGPU_ARGS, undefined, async (page) => {
        page.allowedFailures = ['/models/tiny-bert/modules.json'];
        await page.goto(`${server.url}/?source=${source}#/fine-tune`);
        await status(page, '[data-backend="cpu"][data-upgrade="loading"]').waitFor();
        await loadModel(page, 'base-model', 'tiny-bert');
        await page.locator('#dataset-file').setInputFiles(csv);
        await page.locator('#dataset-preview').waitFor();
        await page.locator('#mode-full').check();
        await page.locator('#train-start').click();
        await page.locator('#train-progress', { hasText: 'Waiting for the WebGPU engine to load: the run starts on it' }).waitFor();
        await page.waitForTimeout(500);
        assert(await page.locator('#train-progress', { hasText: 'Waiting for the WebGPU engine' }).count() === 1, 'no training on the CPU-only engine');
        release();
        await page.locator('#train-progress', { hasText: /Training|Evaluating|Finished in/ }).waitFor();
        const text = (await page.locator('#backend-status').textContent()).trim();
        assert(/^Backend: WebGPU/.test(text), `training runs on WebGPU: ${text}`);
        if (await page.locator('#train-cancel').isEnabled()) await page.locator('#train-cancel').click();
        await page.locator('#train-progress', { hasText: /Stopped;|Finished in/ }).waitFor();
        assert(await page.locator('#engine-notice').count() === 0, 'nothing was lost');
        assert(await page.locator('#train-settings .error').count() === 0, `the run failed: ${await page.locator('#train-settings .error').allTextContents()}`);
      });
      // A WebGPU engine that cannot load (its wasm refused) says why; the page goes on on the CPU.
      const unrefuse = server.refuse('/worker_bg.wasm');
      try {
        await withPage(WEBGPU_ARGS, undefined, async (page) => {
          page.allowedFailures = ['/worker_bg.wasm'];
          await page.goto(`${server.url}/?source=${source}#/classify`);
          await status(page, '[data-backend="cpu"]:not([data-upgrade])').waitFor();
          const text = (await page.locator('#backend-status').textContent()).trim();
          assert(/^Backend: CPU \(the WebGPU engine could not start: worker_bg\.wasm did not load: .*503.*\)/.test(text), `status line: ${text}`);
          await loadModel(page, 'classifier', 'tiny-bert');
          await classify(page, 'without the WebGPU engine');
        });
      } finally {
        unrefuse();
      }
    } finally {
      release();
    }
  }],
  ['classify: tiny-bert on WebGPU shows the engine\'s labels and scores; <script> stays text', async () => {
    const g = golden('tiny-bert');
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'webgpu', 'WebGPU expected');
      await loadModel(page, 'classifier', 'tiny-bert');
      const texts = [g.texts[0], g.texts[1], '<script>window.__pwned = 1</script><b>bold?</b>'];
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(texts.join('\n'));
      await page.locator('#classify-run').click();
      const results = page.locator('#classify-results .result');
      await results.nth(2).waitFor();
      for (let i = 0; i < 2; i++) {
        const want = softmax(g.logits[i]);
        const shown = await scoresOf(results.nth(i));
        assert(shown.length === 2, `two labels for text ${i}`);
        for (const s of shown) {
          const w = want[s.label === 'NEGATIVE' ? 0 : 1];
          assert(Math.abs(s.score - w) < 1e-3, `text ${i} ${s.label}: shown ${s.score}, engine ${w}`);
        }
        assert(shown[0].score >= shown[1].score, 'most probable first');
      }
      assert((await results.nth(2).locator('.text').textContent()) === texts[2], 'the <script> text is shown as text');
      assert(await page.evaluate(() => window.__pwned === undefined), 'no script ran');
      assert(await results.nth(2).locator('b').count() === 0, 'no markup was injected');
      await shoot(page, 'classify-tiny-bert-webgpu');
    });
  }],
  ['RoBERTa and ModernBERT: tiny-roberta and tiny-modernbert on WebGPU, tiny-xlm-roberta and tiny-modernbert on the CPU classify as transformers\' pipeline; fill-mask with <mask>', async () => {
    // The scores transformers' pipeline("text-classification", top_k=None) gave, label by label.
    const check = async (page, name) => {
      const g = golden(name);
      await loadModel(page, 'classifier', name);
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(g.pipeline_texts.join('\n'));
      await page.locator('#classify-run').click();
      // The button says "Classifying…" until the results are in (another model's may be shown).
      await page.locator('#classify-run:text-is("Classify")').waitFor();
      const results = page.locator('#classify-results .result');
      await results.nth(g.pipeline_texts.length - 1).waitFor();
      for (let i = 0; i < g.pipeline_texts.length; i++) {
        const shown = await scoresOf(results.nth(i));
        assert(shown.length === g.pipeline[i].length, `${name}: every label for text ${i}`);
        shown.forEach((s, j) => {
          const want = g.pipeline[i][j];
          assert(s.label === want.label && Math.abs(s.score - want.score) < 1e-3, `${name} text ${i}: shown ${JSON.stringify(s)}, transformers ${JSON.stringify(want)}`);
        });
      }
    };
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'webgpu', 'WebGPU expected');
      await check(page, 'tiny-roberta');
      await shoot(page, 'classify-tiny-roberta-webgpu');
      await check(page, 'tiny-modernbert');
    });
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'cpu', 'the CPU fallback expected');
      await check(page, 'tiny-xlm-roberta');
      await check(page, 'tiny-modernbert');
      const g = golden('tiny-roberta-mlm');
      await loadModel(page, 'fill-mask-model', 'tiny-roberta-mlm');
      await page.locator('#fill-text').fill(g.texts[0]);
      await page.locator('#fill-run').click();
      const rows = page.locator('#fill-results tbody tr');
      await rows.nth(4).waitFor();
      for (let i = 0; i < 5; i++) {
        const cells = await rows.nth(i).locator('td').allTextContents();
        const want = g.pipeline[0][i];
        assert(cells[0] === want.token_str && cells[2] === want.sequence && Math.abs(Number(cells[1]) - want.score) < 1e-4,
          `candidate ${i}: shown ${JSON.stringify(cells)}, transformers ${JSON.stringify(want)}`);
      }
      await shoot(page, 'fill-mask-tiny-roberta-cpu');
    });
  }],
  ['zero-shot: an NLI model on the Classify page scores typed labels as transformers\' pipeline; a baseline on the Fine-tune page\'s test split', async () => {
    const z = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/golden/zero-shot.json'), 'utf8'));
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'webgpu', 'WebGPU expected');
      await loadModel(page, 'classifier', 'tiny-xlm-roberta-nli');
      await page.locator('#zs-labels').waitFor();
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(z.texts.join('\n'));
      for (const c of z.models['tiny-xlm-roberta-nli'].slice(0, 2)) {
        await page.locator('#zs-labels').fill(c.labels.join(', '));
        if (c.multi_label) await page.locator('#zs-multi').check();
        await page.locator('#classify-run').click();
        // The button says "Classifying…" until the results are in.
        await page.locator('#classify-run:text-is("Classify")').waitFor();
        const results = page.locator('#classify-results .result');
        await results.nth(z.texts.length - 1).waitFor();
        for (let i = 0; i < z.texts.length; i++) {
          const shown = await scoresOf(results.nth(i));
          const want = c.results[i];
          assert(shown.length === want.labels.length, `every candidate label for text ${i}`);
          shown.forEach((s, j) => assert(s.label === want.labels[j] && Math.abs(s.score - want.scores[j]) < 1e-3,
            `multi_label ${c.multi_label} text ${i}: shown ${JSON.stringify(s)}, transformers ${want.labels[j]} ${want.scores[j]}`));
        }
      }
      await shoot(page, 'zero-shot-classify-webgpu');
    });
    const csv = filmCsv('baseline', 10);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/fine-tune`);
      assert((await backend(page)).kind === 'cpu', 'the CPU fallback expected');
      await page.locator('#dataset-file').setInputFiles(csv);
      await page.locator('#dataset-preview').waitFor();
      assert(await page.locator('#baseline-run').isDisabled(), 'no NLI model yet');
      await loadModel(page, 'classifier-baseline', 'tiny-distilbert-mnli');
      await page.locator('#baseline-template').fill('This film is {}.');
      await page.locator('#baseline-run').click();
      const table = page.locator('#baseline-metrics');
      await table.waitFor();
      // 20 rows, 20% held out by the stratified split: 4 test rows, all scored.
      assert(await table.getAttribute('data-scored') === '4', `scored ${await table.getAttribute('data-scored')}`);
      const accuracy = Number(await table.locator('tbody tr').first().locator('td.zero-shot').textContent());
      assert(accuracy >= 0 && accuracy <= 1, `accuracy ${accuracy}`);
      assert((await table.locator('td.fine-tuned').first().textContent()) === '—', 'no fine-tuned run yet');
      // A template without a slot for the label is refused with a message.
      await page.locator('#baseline-template').fill('no slot here');
      await page.locator('#baseline-run').click();
      const err = page.locator('#baseline .error');
      await err.waitFor();
      assert(/must hold one \{\}/.test(await err.textContent()), await err.textContent());
      await shoot(page, 'zero-shot-baseline-cpu');
    });
  }],
  ['a model for another box, or of an unsupported architecture, is refused on its config.json before anything else downloads', async () => {
    const only = encodeURIComponent(`${server.url}/config-only/{id}/{file}`);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${only}#/classify`);
      await backend(page);
      for (const [slot, id, said] of [
        ['classifier', 'tiny-bert-mlm', 'this model is a masked language model (BertForMaskedLM): the classifier needs a *ForSequenceClassification or *ForTokenClassification checkpoint; use it in the Fill-mask box'],
        ['fill-mask-model', 'tiny-roberta', 'this model is a text classifier (RobertaForSequenceClassification): fill-mask needs a *ForMaskedLM checkpoint'],
        ['classifier', 'mistral', 'model_type "mistral" is not supported: Tunelab runs bert, distilbert, roberta, xlm-roberta, modernbert, gpt2, llama, qwen2 and qwen3 checkpoints'],
      ]) {
        const p = picker(page, slot);
        await p.locator('input[type="text"]').fill(id);
        await p.locator('button.load').click();
        await p.locator('.error', { hasText: said }).waitFor();
      }
      const fetched = page.log.requests.filter((u) => u.includes('/config-only/')).map((u) => u.split('/config-only/')[1]);
      assert(fetched.length === 3 && fetched.every((f) => f.endsWith('/config.json')), `only the config.json files were fetched: ${fetched}`);
    });
  }],
  ['similarity: the real all-MiniLM-L6-v2 gives sentence-transformers\' similarity matrix and semantic search; sentences from a CSV column', async () => {
    const g = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/golden/similarity.json'), 'utf8'));
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/similarity`);
      assert((await backend(page)).kind === 'cpu', 'the CPU fallback expected');
      await loadModel(page, 'embedding-model', 'all-MiniLM-L6-v2');
      await page.locator('#sim-sentences').fill(g.sentences.join('\n'));
      await page.locator('#sim-query').fill(g.queries.join('\n'));
      await page.locator('#sim-k').fill('3');
      await page.locator('#sim-run').click();
      await page.locator('#sim-matrix').waitFor();
      assert(/8 sentences, compared by cosine similarity/.test(await page.locator('#sim-function').textContent()), 'the function is named');
      const cells = await page.locator('#sim-matrix td').evaluateAll((els) => els.map((e) => Number(e.dataset.score)));
      const want = g.minilm.similarity.flat();
      assert(cells.length === want.length, `${cells.length} cells`);
      cells.forEach((c, i) => assert(Math.abs(c - want[i]) < 1e-3, `cell ${i}: shown ${c}, sentence-transformers ${want[i]}`));
      const queries = page.locator('#sim-hits .query');
      for (let q = 0; q < g.queries.length; q++) {
        const hits = await queries.nth(q).locator('li').evaluateAll((els) => els.map((e) => ({ id: Number(e.dataset.corpusId), score: Number(e.dataset.score) })));
        const w = g.minilm.search[q];
        assert(hits.length === w.length, `query ${q}: ${hits.length} hits`);
        hits.forEach((h, i) => assert(h.id === w[i].corpus_id && Math.abs(h.score - w[i].score) < 1e-3, `query ${q} hit ${i}: ${JSON.stringify(h)} vs ${JSON.stringify(w[i])}`));
      }
      await shoot(page, 'similarity-minilm-cpu');
      // A CSV column fills the sentences (the text column is picked as on the Fine-tune page).
      const csv = path.join(out, 'sentences.csv');
      fs.writeFileSync(csv, 'id,text\n1,"A cat sits on the mat."\n2,"A dog, asleep on the rug."\n3,"Stocks fell sharply."\n');
      await page.locator('#sim-csv').setInputFiles(csv);
      await page.locator('#sim-column').waitFor();
      assert((await page.locator('#sim-sentences').inputValue()) === 'A cat sits on the mat.\nA dog, asleep on the rug.\nStocks fell sharply.', await page.locator('#sim-sentences').inputValue());
      await page.locator('#sim-run').click();
      await page.locator('#sim-function', { hasText: '3 sentences' }).waitFor();
      assert(await page.locator('#sim-matrix tbody tr').count() === 3, 'a 3 x 3 matrix');
    });
  }],
  ['NER: a token classifier on the Classify page marks transformers\' entities (aggregation "simple") in the text', async () => {
    const g = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/golden/ner.json'), 'utf8'));
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'webgpu', 'WebGPU expected');
      await loadModel(page, 'classifier', 'tiny-xlm-roberta-ner');
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(g.texts.join('\n'));
      await page.locator('#classify-run').click();
      const results = page.locator('#classify-results .result.tagged');
      await results.nth(g.texts.length - 1).waitFor();
      for (let i = 0; i < g.texts.length; i++) {
        const want = g.models['tiny-xlm-roberta-ner'].simple[i];
        const rows = await results.nth(i).locator('tr.entity').evaluateAll((els) => els.map((e) => ({
          entity: e.dataset.entity, score: Number(e.dataset.score), start: Number(e.dataset.start), end: Number(e.dataset.end) })));
        assert(rows.length === want.length, `text ${i}: ${rows.length} entities, transformers ${want.length}`);
        rows.forEach((r, j) => assert(r.entity === want[j].entity_group && r.start === want[j].start && r.end === want[j].end && Math.abs(r.score - want[j].score) < 1e-3,
          `text ${i} entity ${j}: ${JSON.stringify(r)} vs ${JSON.stringify(want[j])}`));
        // The text is shown whole, with the non-empty spans marked.
        const shown = await results.nth(i).locator('p.highlighted').evaluate((p) => [...p.childNodes].map((n) => n.nodeName === 'MARK' ? n.firstChild.textContent : n.textContent).join(''));
        assert(shown === g.texts[i], `text ${i} shown as ${JSON.stringify(shown)}`);
        assert(await results.nth(i).locator('mark.entity').count() === want.filter((e) => e.end > e.start).length, `text ${i}: marks`);
      }
      await shoot(page, 'ner-webgpu');
    });
  }],
  ['engine recovery: a trap mid-training and a panic restart the engine; models and data come back, the run says why it ended', async () => {
    const g = golden('tiny-bert');
    const csv = filmCsv('recovery', 12);
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      page.allowedFailures = ['/models/tiny-bert/modules.json'];
      await page.goto(`${server.url}/?source=${source}#/classify`);
      assert((await backend(page)).kind === 'webgpu', 'WebGPU expected');
      await loadModel(page, 'classifier', 'tiny-bert');
      // Classifies the golden text beside a marker new each time, so that the result read is
      // this request's, not one shown before.
      let calls = 0;
      const classify = async () => {
        await page.evaluate(() => { location.hash = '#/classify'; });
        const marker = `classification ${++calls}`;
        await page.locator('#classify-batch').check();
        await page.locator('#classify-text').fill(`${g.texts[0]}\n${marker}`);
        await page.locator('#classify-run').click();
        await page.locator('#classify-results .result', { has: page.locator('.text', { hasText: marker }) }).waitFor();
        return scoresOf(page.locator('#classify-results .result').first());
      };
      const before = await classify();
      const want = softmax(g.logits[0]);
      assert(Math.abs(before.find((s) => s.label === 'NEGATIVE').score - want[0]) < 1e-3, 'scores before the crash match the engine');
      // The Fine-tune page: a base model, the data with its label column chosen, a long run.
      await page.evaluate(() => { location.hash = '#/fine-tune'; });
      await loadModel(page, 'base-model', 'tiny-bert');
      await page.locator('#dataset-file').setInputFiles(csv);
      await page.locator('#dataset-preview').waitFor();
      await page.locator('#mode-full').check();
      await page.locator('#arg-epochs').fill('200');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      await page.locator('#train-progress', { hasText: 'Training' }).waitFor();

      // A trap (no panic message): only the worker's error event tells.
      const trapped = await page.evaluate(() => window.tunelabCrashEngine('abort'));
      assert(/^the engine stopped \(.*unreachable.*\) and was restarted: try again$/i.test(trapped), `the crash request ended with: ${trapped}`);
      await page.locator('#train-progress', { hasText: 'Stopped by the error above' }).waitFor();
      const runError = await page.locator('#train-settings .error').textContent();
      assert(/the engine stopped .* restarted/.test(runError), `the run's error: ${runError}`);
      const notice = page.locator('#engine-notice');
      await notice.filter({ hasText: 'classifier "tiny-bert" was reloaded from browser storage' })
        .filter({ hasText: 'base model "tiny-bert" was reloaded from browser storage' }).waitFor();
      assert((await backend(page)).kind === 'webgpu', 'the fresh engine is on WebGPU again');
      // The data was read again by the fresh engine: a run starts training on it.
      await page.locator('#dataset-preview').waitFor();
      await page.locator('#train-start').click();
      await page.locator('#train-progress', { hasText: 'Training' }).waitFor();
      await page.locator('#train-cancel').click();
      await page.locator('#train-progress', { hasText: 'Stopped;' }).waitFor();
      assert(JSON.stringify(await classify()) === JSON.stringify(before), 'the reloaded classifier scores as before');

      // A panic: the hook's message names it; the page recovers again.
      const panicked = await page.evaluate(() => window.tunelabCrashEngine('panic'));
      assert(/^the engine stopped \(panicked at .*a crash asked for by a test\) and was restarted: try again$/s.test(panicked), `the crash request ended with: ${panicked}`);
      await notice.filter({ hasText: 'panicked at' }).filter({ hasText: 'classifier "tiny-bert" was reloaded' }).waitFor();
      assert(JSON.stringify(await classify()) === JSON.stringify(before), 'the classifier scores as before after the panic');
      await shoot(page, 'engine-recovered');
      await page.locator('#engine-notice button').click();
      assert(await notice.count() === 0, 'the notice can be dismissed');
      // The crashes asked for show in the console: they are the test, not a failure.
      page.log.errors = page.log.errors.filter((e) => !/unreachable|a crash asked for by a test|panicked at/i.test(e));
    });
  }],
  ['classify: a model folder zipped by a desktop tool (deflated) loads from disk and scores like the engine', async () => {
    const g = golden('tiny-bert');
    // Python's zipfile deflates every entry and keeps the folder inside the archive, as the
    // zip tools of desktop systems do.
    const zipPath = path.join(out, 'tiny-bert-desktop.zip');
    fs.rmSync(zipPath, { force: true });
    execFileSync('python3', ['-c', `
import sys, zipfile, pathlib
src = pathlib.Path(sys.argv[1])
with zipfile.ZipFile(sys.argv[2], 'w', compression=zipfile.ZIP_DEFLATED) as z:
    for f in sorted(src.iterdir()):
        z.write(f, f'tiny-bert/{f.name}')
    z.writestr('__MACOSX/tiny-bert/._config.json', b'resource fork')
assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zipfile.ZipFile(sys.argv[2]).infolist())
`, path.join(root, 'tests/fixtures/models/tiny-bert'), zipPath]);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      await backend(page);
      const p = picker(page, 'classifier');
      await p.locator('input.local-files').setInputFiles(zipPath);
      await p.locator('.loaded[data-loaded="tiny-bert-desktop"]').or(p.locator('.error')).first().waitFor();
      const err = p.locator('.error');
      if (await err.count()) throw new Error(`loading the zip failed: ${await err.textContent()}`);
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(g.texts.slice(0, 2).join('\n'));
      await page.locator('#classify-run').click();
      const results = page.locator('#classify-results .result');
      await results.nth(1).waitFor();
      for (let i = 0; i < 2; i++) {
        const want = softmax(g.logits[i]);
        for (const s of await scoresOf(results.nth(i))) {
          const w = want[s.label === 'NEGATIVE' ? 0 : 1];
          assert(Math.abs(s.score - w) < 1e-4, `text ${i} ${s.label}: shown ${s.score}, engine ${w}`);
        }
      }
    });
  }],
  ['model errors: 404 and an HTML page give clear messages and nothing is stored', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      page.allowedFailures = ['/models/no-such-model/'];
      await page.goto(`${server.url}/?source=${source}#/classify`);
      await backend(page);
      const p = picker(page, 'classifier');
      await p.locator('input[type="text"]').fill('no-such-model');
      await p.locator('button.load').click();
      const err = p.locator('.error');
      await err.waitFor();
      const msg = await err.textContent();
      assert(/config\.json: HTTP 404 from .*no-such-model.*config\.json/.test(msg), `404 message: ${msg}`);
      // An HTML page where a model file should be.
      await page.goto(`${server.url}/?source=${encodeURIComponent(`${server.url}/html-mirror/{id}/{file}`)}#/classify`);
      await backend(page);
      await p.locator('input[type="text"]').fill('tiny-bert');
      await p.locator('button.load').click();
      await err.waitFor();
      const msg2 = await err.textContent();
      assert(/returned an HTML page, not the model file/.test(msg2), `HTML message: ${msg2}`);
      const stored = await page.evaluate(async () => {
        const c = await caches.open('tunelab-models-v1');
        return (await c.keys()).map((r) => r.url);
      });
      assert(!stored.some((u) => u.includes('no-such-model') || u.includes('html-mirror')), `stored: ${stored}`);
      // A crafted link with a non-http(s) source: the page does not take it and says so (the
      // engine would refuse it too), and keeps the source it had.
      await page.goto(`${server.url}/?source=${encodeURIComponent('data:text/plain,{id}{file}')}#/models`);
      await backend(page);
      const notice = await page.locator('#source-notice').textContent();
      assert(/model source "data:text\/plain,\{id\}\{file\}" was not used: the source must be an http\(s\) URL/.test(notice), `notice: ${notice}`);
      const kept = await page.locator('#source-template').inputValue();
      assert(kept.startsWith('http'), `source kept: ${kept}`);
      await shoot(page, 'model-errors');
    });
  }],
  ['engine workers: on the CPU a batch to classify and a prompt evaluation are spread over helper engines, with the results one engine gives', async () => {
    const g = golden('tiny-bert');
    // 40 lines: the two single golden texts (the third is a pair) over and over, so each
    // result has a transformers golden.
    const lines = Array.from({ length: 40 }, (_, i) => g.texts[i % 2]);
    const scored = {};
    const evaluated = {};
    const evalCsv = filmCsv('workers-eval', 30);
    for (const workers of [2, 1]) {
      await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
        await page.goto(`${server.url}/?workers=${workers}&source=${source}#/classify`);
        const { kind, text } = await backend(page);
        assert(kind === 'cpu', `CPU expected: ${text}`);
        assert(workers === 1 ? !/engine workers/.test(text) : text.endsWith(` · ${workers} engine workers`), `status line: ${text}`);
        await loadModel(page, 'classifier', 'tiny-bert');
        await page.locator('#classify-batch').check();
        await page.locator('#classify-text').fill(lines.join('\n'));
        await page.locator('#classify-run').click();
        const results = page.locator('#classify-results .result');
        await results.nth(lines.length - 1).waitFor();
        scored[workers] = [];
        for (let i = 0; i < lines.length; i++) {
          const shown = await scoresOf(results.nth(i));
          const want = softmax(g.logits[i % 2]);
          for (const s of shown) {
            const w = want[s.label === 'NEGATIVE' ? 0 : 1];
            assert(Math.abs(s.score - w) < 1e-3, `line ${i} ${s.label}: shown ${s.score}, transformers ${w}`);
          }
          scored[workers].push(shown);
        }
        // A prompt evaluated on a CSV: rows spread over the engines, the same metrics.
        await page.evaluate(() => { location.hash = '#/prompt'; });
        await loadModel(page, 'language-model', 'tiny-gpt2');
        await page.locator('#eval-file').setInputFiles(evalCsv);
        await page.locator('#prompt-metrics').waitFor();
        evaluated[workers] = await page.locator('#prompt-metrics').textContent();
        for (const what of ['classified 40 texts', 'evaluated the prompt on 60 texts']) {
          const said = page.log.console.find((l) => l.includes(`${what}: `) && l.includes('batches on helper engines'));
          if (workers === 1) {
            assert(!said, `one worker spreads nothing: ${said}`);
          } else {
            assert(said && !/: 0 batches/.test(said), `the helper engine took batches (${what}): ${page.log.console.slice(-6).join(' | ')}`);
            console.log(`  ${said}`);
          }
        }
        if (workers === 2) {
          // The helper dies (a trap) when it is given its next batch: the batch comes back all
          // the same, computed by the main engine.
          await page.evaluate(() => { location.hash = '#/classify'; });
          const crashed = await page.evaluate(() => window.tunelabCrashHelper('abort'));
          assert(crashed === 'done', `crash request: ${crashed}`);
          // The lines in reverse order, so that the new results are told from the old.
          await page.locator('#classify-text').fill([...lines].reverse().join('\n'));
          await page.locator('#classify-run').click();
          const results = page.locator('#classify-results .result');
          await page.waitForFunction((t) => document.querySelector('#classify-results .result .text')?.textContent === t, lines[lines.length - 1]);
          await results.nth(lines.length - 1).waitFor();
          const again = [];
          for (let i = 0; i < lines.length; i++) again.push(await scoresOf(results.nth(i)));
          assert(JSON.stringify(again.reverse()) === JSON.stringify(scored[2]), 'the same scores after the helper died');
          const stopped = () => page.log.console.find((l) => /helper engine 1 stopped/.test(l));
          assert(stopped(), `the helper's death is said on the console: ${page.log.console.slice(-6).join(' | ')}`);
          assert(page.log.console.some((l) => /a helper engine failed, its work goes on here/.test(l)), 'its batch was redone here');
          assert(await page.locator('.error').count() === 0, 'no error is shown');
          console.log(`  ${stopped()}`);
        }
        if (workers === 1) {
          // The Models page sets the number too (and restarts the engine).
          await page.evaluate(() => { location.hash = '#/models'; });
          await page.locator('#workers-choice').selectOption('2');
          await page.locator('#backend-status', { hasText: '· 2 engine workers' }).waitFor();
        }
      });
    }
    assert(evaluated[2] === evaluated[1], `prompt metrics with two workers: ${evaluated[2]}; with one: ${evaluated[1]}`);
    // Batched differently (one engine pads per group of texts), so equal up to rounding.
    scored[2].forEach((shown, i) => shown.forEach((s, j) => {
      const o = scored[1][i][j];
      assert(s.label === o.label && Math.abs(s.score - o.score) < 1e-6, `line ${i}: ${JSON.stringify(s)} with two workers, ${JSON.stringify(o)} with one`);
    }));
  }],
  ['browser storage full: the model still loads and says it is not kept; storage keeps nothing half-written', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      page.allowedFailures = ['/models/tiny-distilbert/modules.json'];
      await page.goto(`${server.url}/?source=${source}#/classify`);
      await backend(page);
      await loadModel(page, 'classifier', 'tiny-bert');
      const storedUrls = () => page.evaluate(async () => {
        const c = await caches.open('tunelab-models-v1');
        return (await c.keys()).map((r) => r.url);
      });
      const before = await storedUrls();
      assert(before.some((u) => u.includes('/tiny-bert/model.safetensors')), `tiny-bert is kept: ${before}`);
      // The engine's storage now rejects every write, as a full quota does, from the second on
      // (the first file written goes in and must be removed again).
      const [worker] = page.workers();
      await worker.evaluate(() => {
        const put = Cache.prototype.put;
        let n = 0;
        Cache.prototype.put = function (req, res) {
          n += 1;
          if (n === 1) return put.call(this, req, res);
          return Promise.reject(new DOMException('Quota exceeded.', 'QuotaExceededError'));
        };
      });
      await loadModel(page, 'classifier', 'tiny-distilbert');
      const warning = await picker(page, 'classifier').locator('.storage-warning').textContent();
      assert(/could not keep "tiny-distilbert" in browser storage \(could not write .*: QuotaExceededError: Quota exceeded\.\); storage is as it was: it works until the page closes/.test(warning), `warning: ${warning}`);
      // The page names the model the engine serves, and it classifies.
      await page.locator('#classify-text').fill('a text for the new model');
      await page.locator('#classify-run').click();
      await page.locator('#classify-results .result', { hasText: 'a text for the new model' }).waitFor();
      assert(await picker(page, 'classifier').locator('.error').count() === 0, 'no error');
      const after = await storedUrls();
      assert(JSON.stringify(after.sort()) === JSON.stringify(before.sort()), `storage changed: ${after}`);
      await page.evaluate(() => { location.hash = '#/models'; });
      await page.locator('#stored-models tr[data-model="tiny-bert"]').waitFor();
      assert(await page.locator('#stored-models tr[data-model="tiny-distilbert"]').count() === 0, 'tiny-distilbert is not listed');
      await shoot(page, 'storage-full');
    });
  }],
  ['content security policy: the app runs under it; an injected inline script and a fetch elsewhere are refused', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/classify`);
      await backend(page);
      const csp = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
      assert(/script-src 'self' 'wasm-unsafe-eval';/.test(csp) && /object-src 'none'/.test(csp), `policy: ${csp}`);
      const violations = [];
      await page.exposeFunction('__violation', (v) => violations.push(v));
      await page.evaluate(() => document.addEventListener('securitypolicyviolation', (e) => window.__violation(`${e.violatedDirective} ${e.blockedURI}`)));
      // What an injection would try: run an inline script, send data to another origin.
      const ran = await page.evaluate(() => {
        const s = document.createElement('script');
        s.textContent = 'window.__injected = 1';
        document.head.appendChild(s);
        return window.__injected === 1;
      });
      assert(!ran, 'an inline script ran');
      const sent = await page.evaluate(async () => {
        try { await fetch('data:text/plain,leaked'); return true; } catch { return false; }
      });
      assert(!sent, 'a fetch to another origin went through');
      // The violation events come asynchronously.
      for (let i = 0; i < 50 && violations.length < 2; i++) await new Promise((ok) => setTimeout(ok, 100));
      assert(violations.some((v) => v.startsWith('script-src')) && violations.some((v) => v.startsWith('connect-src')), `violations: ${violations}`);
      // The app itself still works under the policy.
      await loadModel(page, 'classifier', 'tiny-bert');
      await page.locator('#classify-run').click();
      await page.locator('#classify-results .result').first().waitFor();
      page.log.errors = page.log.errors.filter((e) => !/Content Security Policy/.test(e));
    });
  }],
  ['model downloads: a file too large for the browser is refused on its headers, a gzip-compressed one loads', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      // Optional files tiny-bert does not have answer 404 on both mirrors.
      page.allowedFailures = ['/huge-mirror/', '/gzip-mirror/tiny-bert/'];
      const p = picker(page, 'classifier');
      const err = p.locator('.error');
      await page.goto(`${server.url}/?source=${encodeURIComponent(`${server.url}/huge-mirror/{id}/{file}`)}#/classify`);
      await backend(page);
      const t0 = Date.now();
      await p.locator('input[type="text"]').fill('tiny-bert');
      await p.locator('button.load').click();
      await err.waitFor();
      const msg = await err.textContent();
      assert(/model\.safetensors is 3\.3 GB: too large for this browser/.test(msg), `too-large message: ${msg}`);
      // Refused on the headers: well before the server would have given up (5 s).
      assert(Date.now() - t0 < 4000, `took ${Date.now() - t0} ms`);
      const stored = await page.evaluate(async () => {
        const c = await caches.open('tunelab-models-v1');
        return (await c.keys()).map((r) => r.url);
      });
      assert(!stored.some((u) => u.includes('huge-mirror')), `stored: ${stored}`);
      // The same model through a mirror that gzips: loads, and classifies as from the plain one.
      await page.goto(`${server.url}/?source=${encodeURIComponent(`${server.url}/gzip-mirror/{id}/{file}`)}#/classify`);
      await backend(page);
      await loadModel(page, 'classifier', 'tiny-bert');
      await shoot(page, 'model-download-limits');
    });
  }],
  ['fine-tune data: a malformed CSV shows the row-level error; the first row can be set as the header or as data', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/fine-tune`);
      await backend(page);
      const bad = path.join(out, 'malformed.csv');
      fs.writeFileSync(bad, 'text,label\ngood film,positive\n"never closed,negative\nbad film,negative\n');
      await page.locator('#dataset-file').setInputFiles(bad);
      const err = page.locator('section .error').first();
      await err.waitFor();
      const msg = await err.textContent();
      assert(msg.includes('malformed.csv: line 3: a quote opens here and is never closed'), `message: ${msg}`);
      // A file with no header: detected as such, and the first row can be set either way.
      const plain = path.join(out, 'no-header.csv');
      fs.writeFileSync(plain, 'great film,positive\nawful film,negative\nfine film,positive\n');
      await page.locator('#dataset-file').setInputFiles(plain);
      const described = page.locator('#dataset-preview p.muted').first();
      await described.filter({ hasText: 'no-header.csv: 3 rows' }).waitFor();
      assert((await described.textContent()).includes('no header'), await described.textContent());
      const heads = () => page.locator('#dataset-preview th').allTextContents();
      assert(JSON.stringify(await heads()) === '["column 1","column 2"]', `columns: ${await heads()}`);
      await page.locator('#dataset-header').selectOption('header');
      await described.filter({ hasText: 'no-header.csv: 2 rows' }).waitFor();
      assert(JSON.stringify(await heads()) === '["great film","positive"]', `columns: ${await heads()}`);
      await page.locator('#dataset-header').selectOption('data');
      await described.filter({ hasText: 'no-header.csv: 3 rows' }).waitFor();
      assert(JSON.stringify(await heads()) === '["column 1","column 2"]', `columns: ${await heads()}`);
    });
  }],
  ['fine-tune with a separate test file: columns matched by name, unknown labels refused', async () => {
    const records = csvRecords(fs.readFileSync(path.join(root, 'tests/data/tweets.csv'), 'utf8'));
    const rows = records.slice(1);
    const pick = (label, from, n) => rows.filter((r) => r[1] === label).slice(from, from + n);
    const quote = (f) => `"${f.replaceAll('"', '""')}"`;
    const write = (name, lines) => { const f = path.join(out, name); fs.writeFileSync(f, lines.map((r) => r.map(quote).join(',')).join('\n') + '\n'); return f; };
    const train = write('split-train.csv', [['text', 'label'], ...pick('positive', 0, 20), ...pick('negative', 0, 20)]);
    // The test file has its columns the other way round and an extra one.
    const test = write('split-test.csv', [['label', 'id', 'text'], ...[...pick('positive', 20, 6), ...pick('negative', 20, 5)].map((r, i) => [r[1], String(i), r[0]])]);
    const odd = write('split-odd.csv', [['text', 'label'], ['fine', 'positive'], ['so so', 'neutral']]);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, train);
      await page.locator('#test-separate').check();
      assert(await page.locator('#train-start').isDisabled(), 'training waits for the test file');
      assert(await page.locator('#arg-test').isDisabled(), 'the split fraction is off');
      await page.locator('#test-file').setInputFiles(odd);
      await page.locator('#test-preview').waitFor();
      await page.locator('#mode-head').check();
      await page.locator('#train-start').click();
      const err = page.locator('#train-settings .error');
      await err.waitFor();
      const msg = await err.textContent();
      assert(msg === 'split-odd.csv: row 3, column "label": the label "neutral" is not one of the training data\'s classes (negative, positive)', `message: ${msg}`);
      await page.locator('#test-file').setInputFiles(test);
      await page.locator('#test-preview', { hasText: 'split-test.csv: 11 rows' }).waitFor();
      await page.locator('#arg-epochs').fill('1');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      await page.locator('#metrics-table tr[data-epoch="1"]').waitFor();
      const report = await page.locator('#import-report').textContent();
      assert(report.includes('(40 train / 11 test)'), `report: ${report}`);
      const confusion = await page.locator('#confusion tbody td').allTextContents();
      const counted = confusion.map(Number);
      assert(counted.length === 4 && counted[0] + counted[1] === 5 && counted[2] + counted[3] === 6, `confusion rows hold the test file's 5 negative and 6 positive rows: ${confusion}`);
      await shoot(page, 'fine-tune-test-file');
    });
  }],
  ['fine-tune on the CPU: all-MiniLM-L6-v2, head only, charts, metrics, download, reload, classify like the native engine', async () => {
    // A few hundred rows of tests/data/tweets.csv (the shared data), both classes.
    const records = csvRecords(fs.readFileSync(path.join(root, 'tests/data/tweets.csv'), 'utf8'));
    const [header, ...rows] = records;
    const pos = rows.filter((r) => r[1] === 'positive').slice(0, 150);
    const neg = rows.filter((r) => r[1] === 'negative').slice(0, 150);
    const csv = path.join(out, 'tweets-300.csv');
    const quote = (f) => `"${f.replaceAll('"', '""')}"`;
    fs.writeFileSync(csv, [header, ...pos.flatMap((p, i) => [p, neg[i]])].map((r) => r.map(quote).join(',')).join('\n') + '\n');
    const zipPath = path.join(out, 'finetuned.zip');
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/fine-tune`);
      assert((await backend(page)).kind === 'cpu', 'CPU expected');
      await loadModel(page, 'base-model', 'all-MiniLM-L6-v2');
      await page.locator('#dataset-file').setInputFiles(csv);
      await page.locator('#dataset-preview').waitFor();
      assert((await page.locator('#text-column').inputValue()) === '0' && (await page.locator('#label-column').inputValue()) === '1', 'default columns');
      await page.locator('#mode-head').check();
      await page.locator('#arg-epochs').fill('4');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      // The page stays responsive while the engine works: type on another page and read it back.
      await page.locator('#train-progress').waitFor();
      await page.getByRole('link', { name: 'Classify', exact: true }).click();
      const t0 = Date.now();
      await page.locator('#classify-text').fill('typed while training');
      assert((await page.locator('#classify-text').inputValue()) === 'typed while training', 'typing works during training');
      const typingMs = Date.now() - t0;
      assert(typingMs < 5000, `typing took ${typingMs} ms during training`);
      await page.getByRole('link', { name: 'Fine-tune', exact: true }).click();
      await page.locator('#metrics-table tr[data-epoch="4"]').waitFor({ timeout: 600_000 });
      const lossPoints = Number(await page.locator('#chart-loss svg').getAttribute('data-points'));
      const accPoints = Number(await page.locator('#chart-accuracy svg').getAttribute('data-points'));
      assert(lossPoints >= 4 && accPoints === 4, `charts filled: ${lossPoints} loss points, ${accPoints} accuracy points`);
      const acc = Number(await page.locator('#metrics-table tr[data-epoch="4"] .accuracy').textContent());
      assert(acc > 0.5, `test accuracy ${acc} beats chance`);
      assert(await page.locator('#confusion tbody tr').count() === 2, 'a 2x2 confusion matrix');
      console.log(`  typing during training: ${typingMs} ms; test accuracy after 4 epochs: ${acc}`);
      await shoot(page, 'fine-tune-done');
      const [download] = await Promise.all([
        page.waitForEvent('download'),
        page.locator('#export-model').click(),
      ]).catch(async (e) => { throw new Error(`${e.message}; page says: ${await page.locator('section .error').allTextContents()}`); });
      await download.saveAs(zipPath);
      assert(fs.statSync(zipPath).size > 80_000_000, 'the zip holds the model');
      // Its model card: the Hub header with the last epoch's accuracy, the data file's SHA-256.
      const card = execFileSync('python3', ['-c',
        'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.read(next(n for n in z.namelist() if n.endswith("/README.md"))).decode(), end="")',
        zipPath], { encoding: 'utf8' });
      const sha = crypto.createHash('sha256').update(fs.readFileSync(csv)).digest('hex');
      assert(card.startsWith('---\nbase_model: "all-MiniLM-L6-v2"\n'), `card header: ${card.slice(0, 200)}`);
      assert(card.includes(`- SHA-256: \`${sha}\``), 'the card names the data file by its SHA-256');
      assert(card.includes('- Rows: 300 read, 300 used') && card.includes('- Backend: CPU'), 'rows and backend');
      const cardAcc = Number(/- type: accuracy\n {6}value: ([0-9.]+)/.exec(card)?.[1]);
      assert(Math.abs(cardAcc - acc) < 1e-3, `card accuracy ${cardAcc}, page ${acc}`);
      assert(/\| 4 \| [0-9.]+ \| [0-9.]+ \|/.test(card) && card.includes('| **negative** |'), 'epochs and the confusion matrix');
      await page.locator('#use-model').click();
      // (The export left a message too: wait for this one.)
      await page.locator('#saved-message', { hasText: 'kept in browser storage' }).waitFor();
      // Reload: the trained model is in browser storage; its scores equal the native engine's
      // on the downloaded folder.
      const texts = ['what a wonderful day with friends', 'this is the worst service ever'];
      const native = JSON.parse(execFileSync('cargo', ['run', '--quiet', '--example', 'classify', '--', zipPath, ...texts], { cwd: root, encoding: 'utf8' }));
      await page.goto(`${server.url}/?source=${source}#/classify`);
      await page.reload();
      await backend(page);
      const stored = picker(page, 'classifier').locator('select.stored');
      const option = stored.locator('option', { hasText: 'fine-tuned' }).first();
      await option.waitFor({ state: 'attached', timeout: 30_000 }).catch(async (e) => {
        throw new Error(`${e.message}; stored options: ${JSON.stringify(await stored.locator('option').allTextContents())}`);
      });
      await stored.selectOption(await option.getAttribute('value'));
      await picker(page, 'classifier').locator('.loaded').waitFor();
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(texts.join('\n'));
      await page.locator('#classify-run').click();
      const results = page.locator('#classify-results .result');
      await results.nth(1).waitFor();
      for (let i = 0; i < texts.length; i++) {
        const shown = await scoresOf(results.nth(i));
        assert(shown.length === 2, 'two labels');
        for (const s of shown) {
          const w = native[i].find((n) => n.label === s.label);
          assert(w && Math.abs(w.score - s.score) < 1e-4, `text ${i} ${s.label}: browser ${s.score}, native ${w && w.score}`);
        }
      }
      console.log(`  native: ${JSON.stringify(native)}`);
      await shoot(page, 'classify-finetuned-cpu');
    });
  }],
  ['fine-tune: LoRA trains adapters; the PEFT adapter zip downloads and applies back onto the base', async () => {
    const csv = filmCsv('lora', 12);
    const adapterZip = path.join(out, 'lora-adapter.zip');
    const mergedZip = path.join(out, 'lora-merged.zip');
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, csv);
      assert(!(await page.locator('#lora-settings').count()), 'LoRA settings only in LoRA mode');
      await page.locator('#mode-lora').check();
      assert((await page.locator('#arg-lr').inputValue()) === '0.0005', 'LoRA default learning rate');
      for (const [id, value] of [['#arg-lora-r', '4'], ['#arg-lora-targets', 'query, value, dense'], ['#arg-epochs', '2'], ['#arg-lr', '0.01']]) {
        await page.locator(id).fill(value);
        await page.locator(id).dispatchEvent('change');
      }
      await page.locator('#train-start').click();
      await page.locator('#metrics-table tr[data-epoch="2"]').waitFor();
      const save = async (button, file) => {
        const [download] = await Promise.all([page.waitForEvent('download'), page.locator(button).click()]);
        await download.saveAs(file);
      };
      await save('#export-adapter', adapterZip);
      await save('#export-model', mergedZip);
      const read = (zip, name) => execFileSync('python3', ['-c',
        'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.read(next(n for n in z.namelist() if n.endswith("/" + sys.argv[2]))).decode("latin-1"), end="")',
        zip, name], { encoding: 'utf8' });
      const config = JSON.parse(read(adapterZip, 'adapter_config.json'));
      assert(config.peft_type === 'LORA' && config.r === 4 && config.task_type === 'SEQ_CLS', `adapter_config ${JSON.stringify(config)}`);
      assert(JSON.stringify(config.target_modules) === '["query","value","dense"]', `targets ${config.target_modules}`);
      assert(JSON.stringify(config.modules_to_save) === '["classifier"]', `modules_to_save ${config.modules_to_save}`);
      assert(read(adapterZip, 'adapter_model.safetensors').includes('base_model.model.bert.pooler.dense.lora_A.weight'), 'PEFT names');
      assert(JSON.parse(read(adapterZip, 'labels.json')).id2label['1'] === 'positive', 'labels.json');
      assert(read(adapterZip, 'README.md').includes('library_name: peft'), 'the adapter card');
      assert(fs.statSync(adapterZip).size < fs.statSync(mergedZip).size / 4, 'the adapter is a fraction of the model');
      // The adapter applied back onto the base scores as the merged folder does natively.
      await page.locator('#adapter-files').setInputFiles(adapterZip);
      await page.locator('#saved-message', { hasText: 'adapter is applied' }).waitFor();
      const texts = ['a good film number 99', 'a bad film number 99'];
      const native = JSON.parse(execFileSync('cargo', ['run', '--quiet', '--example', 'classify', '--', mergedZip, ...texts], { cwd: root, encoding: 'utf8' }));
      await page.getByRole('link', { name: 'Classify', exact: true }).click();
      await page.locator('#classify-batch').check();
      await page.locator('#classify-text').fill(texts.join('\n'));
      await page.locator('#classify-run').click();
      const results = page.locator('#classify-results .result');
      await results.nth(1).waitFor();
      for (let i = 0; i < texts.length; i++) {
        for (const s of await scoresOf(results.nth(i))) {
          const w = native[i].find((n) => n.label === s.label);
          assert(w && Math.abs(w.score - s.score) < 1e-4, `text ${i} ${s.label}: applied adapter ${s.score}, merged folder natively ${w && w.score}`);
        }
      }
      console.log(`  LoRA adapter zip ${fs.statSync(adapterZip).size} bytes, merged ${fs.statSync(mergedZip).size}; scores ${JSON.stringify(native)}`);
    });
  }],
  ['fine-tune: a run kept in browser storage resumes after a reload from its checkpoint, and a kept run can be deleted', async () => {
    const csv = filmCsv('resume', 30);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, csv);
      await page.locator('#mode-full').check();
      // Enough epochs that a reload lands mid-run however fast the steps go (a run that ends
      // first is no longer kept): waiting for the checkpoints of steps 15 to 25 alone raced the
      // CPU's training past them.
      const epochs = 20;
      for (const [id, value] of [['#arg-epochs', String(epochs)], ['#arg-save-steps', '5'], ['#arg-batch', '4']]) {
        await page.locator(id).fill(value);
        await page.locator(id).dispatchEvent('change');
      }
      await page.locator('#train-start').click();
      // After the first epoch's evaluation and a checkpoint in the second epoch or later: reload.
      await page.locator('#metrics-table tr[data-epoch="1"]').waitFor();
      await page.waitForFunction(() => Number(document.querySelector('#checkpoint-kept')?.dataset.step) >= 15);
      page.on('dialog', (d) => d.accept());
      await page.reload();
      await backend(page);
      const row = page.locator('#stored-runs .stored-run').first();
      await row.waitFor();
      const savedStep = Number(await row.getAttribute('data-step'));
      assert(savedStep >= 15, `kept at step ${savedStep}`);
      assert((await page.locator('#runs-bytes').textContent()).includes('B'), 'storage used is shown');
      await row.locator('.resume-run').click();
      // The base model came back from browser storage, training goes on from the checkpoint.
      await picker(page, 'base-model').locator('.loaded[data-loaded="tiny-bert"]').waitFor();
      await page.locator(`#metrics-table tr[data-epoch="${epochs}"]`).waitFor();
      assert(await page.locator('#metrics-table tr[data-epoch="1"]').count() === 1, 'the evaluations before the reload are kept');
      await page.locator(`#train-progress[data-steps="${epochs * 12}"]`).waitFor();
      // A finished run is no longer kept.
      await page.locator('#stored-runs').waitFor({ state: 'detached' });
      // A cancelled run stays kept until deleted (the data file picked again after the reload).
      await page.locator('#dataset-file').setInputFiles(csv);
      await page.locator('#dataset-preview').waitFor();
      await page.locator('#arg-epochs').fill('50');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      await page.locator('#checkpoint-kept').waitFor();
      await page.locator('#train-cancel').click();
      await page.locator('#train-progress', { hasText: 'Stopped' }).waitFor();
      await page.locator('#stored-runs .stored-run').first().waitFor();
      await page.locator('#stored-runs .delete-run').first().click();
      await page.locator('#stored-runs').waitFor({ state: 'detached' });
      console.log(`  resumed from step ${savedStep} of ${epochs * 12}`);
    });
  }],
  ['fine-tune: masked-LM domain adaptation on the data file\'s texts lowers held-out perplexity; the adapted encoder becomes the base and fine-tunes', async () => {
    const csv = filmCsv('mlm', 40);
    const zipPath = path.join(out, 'mlm-adapted.zip');
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, csv);
      for (const [id, value] of [['#mlm-epochs', '3'], ['#mlm-lr', '0.005'], ['#mlm-maxlen', '32']]) {
        await page.locator(id).fill(value);
        await page.locator(id).dispatchEvent('change');
      }
      await page.locator('#mlm-start').click();
      await page.locator('#mlm-progress[data-finished="true"]').waitFor();
      const ppl = async (epoch) => Number(await page.locator(`#mlm-perplexity tr[data-epoch="${epoch}"] .perplexity`).getAttribute('data-value'));
      const [before, after] = [await ppl(0), await ppl(3)];
      assert(after < before, `held-out perplexity ${before} -> ${after}`);
      const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#mlm-export').click()]);
      await download.saveAs(zipPath);
      const config = JSON.parse(execFileSync('python3', ['-c',
        'import sys, zipfile; z = zipfile.ZipFile(sys.argv[1]); print(z.read(next(n for n in z.namelist() if n.endswith("/config.json"))).decode(), end="")',
        zipPath], { encoding: 'utf8' }));
      assert(config.architectures[0] === 'BertForMaskedLM', `architectures ${config.architectures}`);
      await page.locator('#mlm-use').click();
      await page.locator('#mlm-message', { hasText: 'is now the base model' }).waitFor();
      await picker(page, 'base-model').locator('.loaded[data-loaded*="adapted on"]').waitFor();
      // Fine-tuning on the adapted encoder.
      await page.locator('#mode-full').check();
      await page.locator('#arg-epochs').fill('1');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      await page.locator('#metrics-table tr[data-epoch="1"]').waitFor();
      console.log(`  held-out perplexity ${before.toFixed(1)} -> ${after.toFixed(1)}`);
    });
  }],
  ['fine-tune: closing the tab mid-run asks first; after the run it does not', async () => {
    const csv = filmCsv('leave-mid-run', 40);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, csv);
      // Full mode, many epochs: the run lasts while the page is asked to close.
      await page.locator('#mode-full').check();
      await page.locator('#arg-epochs').fill('200');
      await page.locator('#arg-epochs').dispatchEvent('change');
      await page.locator('#train-start').click();
      await page.locator('#train-progress').waitFor();
      const asked = () => page.evaluate(() => {
        const e = new Event('beforeunload', { cancelable: true });
        window.dispatchEvent(e);
        return e.defaultPrevented;
      });
      assert(await asked(), 'closing the tab during a run asks first');
      await page.locator('#train-cancel').click();
      await page.locator('#train-progress', { hasText: 'Stopped' }).waitFor();
      assert(!(await asked()), 'once the run ended the tab closes without asking');
    });
  }],
  ['fine-tune: a learning rate of 1e30 ends with the diverged message, not an engine error', async () => {
    // The loss turns NaN or infinite; the event carrying it must cross from the worker intact.
    const csv = filmCsv('diverge', 12);
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      await fineTuneTinyBert(page, csv);
      await page.locator('#mode-full').check();
      for (const [id, value] of [['#arg-lr', '1e30'], ['#arg-logging', '1'], ['#arg-epochs', '1']]) {
        await page.locator(id).fill(value);
        await page.locator(id).dispatchEvent('change');
      }
      await page.locator('#train-start').click();
      const progress = page.locator('#train-progress', { hasText: 'the loss became' });
      await progress.waitFor();
      const text = await progress.textContent();
      assert(/the loss became (NaN|infinite) at step \d+ \(epoch 1\): training stopped and the weights/.test(text), `progress: ${text}`);
      assert(await page.locator('.error').count() === 0, `an error is shown: ${await page.locator('.error').allTextContents()}`);
      await shoot(page, 'fine-tune-diverged');
    });
  }],
  ['prompt: tiny-gpt2 greedy gives the golden tokens, label scores show, seeded sampling repeats', async () => {
    const g = golden('tiny-gpt2');
    const want = g.greedy_8_new_tokens[0].slice(g.input_ids[0].length).join(',');
    await withPage(WEBGPU_ARGS, undefined, async (page) => {
      await page.goto(`${server.url}/?source=${source}#/prompt`);
      await backend(page);
      await loadModel(page, 'language-model', 'tiny-gpt2');
      await page.locator('#raw-prompt').check();
      await page.locator('#prompt-text').fill(g.text);
      await page.locator('#stop-newline').uncheck();
      await page.locator('#max-new-tokens').fill('8');
      await page.locator('#max-new-tokens').dispatchEvent('change');
      await page.locator('#generate').click();
      await page.locator('#generation[data-ids]:not([data-ids=""])').waitFor();
      const ids = await page.locator('#generation').getAttribute('data-ids');
      assert(ids === want, `greedy ids ${ids}, golden ${want}`);
      await page.locator('#zero-shot').check();
      await page.locator('#score').click();
      await page.locator('#label-scores .score').nth(1).waitFor();
      const scores = await scoresOf(page.locator('#label-scores'));
      const total = scores.reduce((a, s) => a + s.score, 0);
      assert(scores.length === 2 && Math.abs(total - 1) < 1e-3, `label probabilities ${JSON.stringify(scores)}`);
      const sample = async () => {
        await page.locator('#generation').evaluate((e) => { e.dataset.ids = ''; });
        await page.locator('#generate').click();
        await page.locator('#generation[data-ids]:not([data-ids=""])').waitFor();
        return page.locator('#generation').getAttribute('data-ids');
      };
      await page.locator('#do-sample').check();
      await page.locator('#gen-seed').fill('7');
      await page.locator('#gen-seed').dispatchEvent('change');
      const a = await sample();
      const b = await sample();
      assert(a === b, `same seed, same sample: ${a} vs ${b}`);
      await shoot(page, 'prompt-tiny-gpt2');
    });
  }],
  ['prompt: tiny Llama, Qwen2 (sharded, by id) and Qwen3 decoders give transformers\' greedy tokens on WebGPU and on the CPU', async () => {
    for (const [args, kind] of [[WEBGPU_ARGS, 'webgpu'], [NO_WEBGPU_ARGS, 'cpu']]) {
      await withPage(args, undefined, async (page) => {
        await page.goto(`${server.url}/?source=${source}#/prompt`);
        assert((await backend(page)).kind === kind, `${kind} expected`);
        // tiny-qwen2-sharded: tiny-qwen2 saved by transformers in three files and an index (no
        // model.safetensors: its 404 sends the app to the index).
        page.allowedFailures = ['/models/tiny-qwen2-sharded/model.safetensors'];
        for (const [name, same] of [['tiny-llama'], ['tiny-qwen2-sharded', 'tiny-qwen2'], ['tiny-qwen3']]) {
          const g = golden(same || name);
          const want = g.greedy_ids[0].slice(g.input_ids[0].length).join(',');
          await loadModel(page, 'language-model', name);
          // The loaded line says the precision on a GPU (SwiftShader has no shader-f16: f32).
          const line = await picker(page, 'language-model').locator('.loaded').textContent();
          const said = kind === 'webgpu' ? /, f(16|32) on the GPU$/.test(line.trim()) : !/on the GPU/.test(line);
          assert(said, `${name} on ${kind}: loaded line ${JSON.stringify(line)}`);
          await page.locator('#raw-prompt').check();
          await page.locator('#prompt-text').fill(g.prompt);
          await page.locator('#stop-newline').uncheck();
          await page.locator('#max-new-tokens').fill('8');
          await page.locator('#max-new-tokens').dispatchEvent('change');
          await page.locator('#generation').evaluate((e) => { e.dataset.ids = ''; }).catch(() => {});
          await page.locator('#generate').click();
          await page.locator('#generation[data-ids]:not([data-ids=""])').waitFor();
          const ids = await page.locator('#generation').getAttribute('data-ids');
          assert(ids === want, `${name} on ${kind}: greedy ids ${ids}, transformers ${want}`);
        }
        // As a chat turn through Qwen3's template (tests/chat.rs checks the templates themselves).
        const g = golden('tiny-qwen3');
        await page.locator('#as-chat').check();
        await page.locator('#generation').evaluate((e) => { e.dataset.ids = ''; });
        await page.locator('#generate').click();
        await page.locator('#sent-prompt').waitFor();
        const sent = await page.locator('#sent-prompt pre').textContent();
        const chat = `<|im_start|>user\n${g.prompt}<|im_end|>\n<|im_start|>assistant\n`;
        assert(sent === chat, `prompt as sent: ${JSON.stringify(sent)}`);
        await page.locator('#as-chat').uncheck();
        await shoot(page, `prompt-tiny-llama-${kind}`);
      });
    }
  }],
  ['prompt: a language model too large for the engine\'s memory on the CPU is refused on its config.json, with the numbers', async () => {
    await withPage(NO_WEBGPU_ARGS, undefined, async (page) => {
      page.allowedFailures = ['/big-lm/'];
      await page.goto(`${server.url}/?source=${encodeURIComponent(`${server.url}/big-lm/{id}/{file}`)}#/prompt`);
      assert((await backend(page)).kind === 'cpu', 'the CPU expected');
      const p = picker(page, 'language-model');
      await p.locator('input[type="text"]').fill('qwen3-0.6b');
      await p.locator('button.load').click();
      const err = p.locator('.error');
      await err.waitFor();
      const msg = await err.textContent();
      assert(/this model \(596 M weights\) needs about 4\.1 GB of the engine's memory on the CPU: 1\.2 GB of weight files while they load, 2\.4 GB of weights in f32/.test(msg), `refusal: ${msg}`);
      assert(/choose WebGPU in the settings/.test(msg), `advice: ${msg}`);
      // Said on config.json: nothing else was asked for.
      const asked = server.hits.filter((h) => h.startsWith('/big-lm/'));
      assert(asked.length === 1 && asked[0] === '/big-lm/qwen3-0.6b/config.json', `requests: ${asked}`);
      await shoot(page, 'prompt-memory-refusal');
    });
  }],
  ['prompt: Stop ends a generation within a few tokens on the CPU and on WebGPU; a stopped evaluation says what it covered', async () => {
    // Before: on the CPU nothing in the loop let the worker read the Stop until the end.
    const csv = filmCsv('prompt-eval', 300);
    for (const args of [NO_WEBGPU_ARGS, WEBGPU_ARGS]) {
      await withPage(args, undefined, async (page) => {
        await page.goto(`${server.url}/?source=${source}#/prompt`);
        await backend(page);
        await loadModel(page, 'language-model', 'tiny-gpt2');
        await page.locator('#raw-prompt').check();
        await page.locator('#prompt-text').fill('The');
        await page.locator('#stop-newline').uncheck();
        await page.locator('#max-new-tokens').fill('120');
        await page.locator('#max-new-tokens').dispatchEvent('change');
        await page.locator('#generate').click();
        await page.locator('#generation:not(:empty)').waitFor();
        await page.locator('#stop').click();
        const reason = page.locator('#stop-reason', { hasText: 'stopped' });
        await reason.waitFor();
        const text = await reason.textContent();
        const n = Number((text.match(/^(\d+) new tokens/) || [])[1]);
        assert(/stopped: Cancelled/.test(text) && n < 60, `after Stop: ${text}`);
        // A long evaluation, stopped once it is under way: the metrics say what they cover.
        await page.locator('#eval-file').setInputFiles(csv);
        await page.locator('text=/[1-9]\\d* \\/ 600 rows scored/').waitFor();
        await page.locator('#stop').click();
        const coverage = page.locator('#eval-coverage');
        await coverage.waitFor();
        const said = await coverage.textContent();
        const m = said.match(/^Stopped after (\d+) of 600 rows/);
        assert(m && Number(m[1]) > 0 && Number(m[1]) < 600, `coverage: ${said}`);
        await page.locator('#prompt-metrics').waitFor();
        console.log(`  ${args === WEBGPU_ARGS ? 'WebGPU' : 'CPU'}: ${text}; ${said}`);
      });
    }
  }],
  ['widget: the embedded classifier box loads its model and classifies', async () => {
    await withPage(NO_WEBGPU_ARGS, { width: 480, height: 640 }, async (page) => {
      await page.goto(`${server.url}/?embed=classify&model=tiny-bert&source=${source}`);
      await page.locator('.widget-status', { hasText: 'tiny-bert' }).waitFor();
      assert(await page.locator('nav').count() === 0, 'no navigation in the widget');
      await page.locator('#classify-run').click();
      await page.locator('#classify-results .score').first().waitFor();
      await shoot(page, 'widget-classify');
    });
  }],
];

let { ran, failed } = await runTests(tests, process.argv[2]);
await server.close();
console.log(`e2e: ${ran - failed} passed, ${failed} failed; screenshots in ${path.relative(root, out)}`);
if (ran === 0) failed = 1;
process.exit(failed ? 1 : 0);
