// Engine workers on the CPU: the built app (a debug build, which exposes `tunelabRequest`) in
// headless Chromium without WebGPU, real all-MiniLM-L6-v2, once with one engine worker and once
// with N (default: the machine's cores). It times, through the app's own requests:
//   - head-mode feature extraction of the first ROWS movie reviews (fine-tuning's first phase),
//   - classifying 256 reviews, and 32 short ones (about 32 tokens: the "32x32" case),
//   - classifying one text of about 128 tokens (one text does not split: both should be equal),
//   - evaluating the zero-shot prompt on 48 reviews by label scoring with a GPT-2-small-shaped
//     model (random weights, written by `cargo run --example write_random_gpt2 -- <folder>`;
//     BENCH_MODELS is the folder holding `gpt2-small-random`),
// and prints the machine, the table and the speed-ups.
// Usage: TUNELAB_DIST=<trunk dist (debug)> BENCH_MODELS=<folder> node benches/workers.mjs [N]
//        (ROWS=1000 by default)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch, NO_WEBGPU_ARGS } from '../tests/e2e/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const dist = process.env.TUNELAB_DIST;
const models = process.env.TUNELAB_MODELS || path.join(os.homedir(), '.cache/tunelab/models');
const rows = Number(process.env.ROWS || 1000);
const many = Number(process.argv[2] || os.cpus().length);
if (!dist || !fs.existsSync(path.join(dist, 'index.html'))) throw new Error('set TUNELAB_DIST to a debug trunk build');

// The reviews, as the CSV has them (RFC 4180: quoted fields may hold commas and quotes).
const csv = fs.readFileSync(path.join(root, 'tests/data/movie_reviews.csv'), 'utf8');
const records = [];
{
  let field = '', record = [], quoted = false;
  for (let i = 0; i < csv.length; i++) {
    const c = csv[i];
    if (quoted) {
      if (c === '"' && csv[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { record.push(field); field = ''; }
    else if (c === '\n') { record.push(field); records.push(record); field = ''; record = []; }
    else if (c !== '\r') field += c;
  }
}
const reviews = records.slice(1).map((r) => r[0]);
const head = csv.split('\n').slice(0, rows + 1).join('\n') + '\n';
const words = (t) => t.split(/\s+/).length;
const short = reviews.filter((t) => words(t) >= 18 && words(t) <= 22).slice(0, 32);
// About 128 tokens: reviews joined up to 100 words.
const long = (() => { let t = ''; for (const r of reviews) { if (words(t + r) > 100) break; t += (t ? ' ' : '') + r; } return t; })();
const batch = reviews.slice(2000, 2256);

const benchModels = process.env.BENCH_MODELS;
if (!benchModels || !fs.existsSync(path.join(benchModels, 'gpt2-small-random/model.safetensors'))) throw new Error('set BENCH_MODELS to the folder of gpt2-small-random');
const promptCsv = 'text,label\n' + records.slice(1, 49).map((r) => `"${r[0].replaceAll('"', '""')}",${r[1]}`).join('\n') + '\n';
const server = await serve({ '/models/': models, '/bench-models/': benchModels, '/': dist });
const source = `${server.url}/models/{id}/{file}`;
const args = {
  mode: 'Head', num_train_epochs: 1, per_device_train_batch_size: 32, per_device_eval_batch_size: 32,
  learning_rate: 1e-2, weight_decay: 0, warmup_ratio: 0, adam_beta1: 0.9, adam_beta2: 0.999,
  adam_epsilon: 1e-8, max_grad_norm: 1, max_length: 128, seed: 42, logging_steps: 10, dropout: true,
};

async function measure(workers) {
  const browser = await launch(NO_WEBGPU_ARGS);
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}/?workers=${workers}#/classify`);
    const status = page.locator('#backend-status:not([data-backend="probing"])');
    await status.waitFor({ timeout: 120_000 });
    const line = await status.textContent();
    const request = (req, payload) => page.evaluate(async ([json, bytes]) => {
      const payload = bytes === null ? undefined : new TextEncoder().encode(bytes).buffer;
      const t0 = performance.now();
      const events = await window.tunelabRequest(json, payload);
      return { ms: performance.now() - t0, events: events.map((e) => ({ ms: e.ms - t0, event: JSON.parse(e.json) })) };
    }, [JSON.stringify(req), payload ?? null]);
    await request({ Load: { slot: 'Base', source: { Hub: { id: 'all-MiniLM-L6-v2', url_template: source } } } });
    await request({ ParseTable: { name: 'movie_reviews.csv', options: { delimiter: null, has_header: null }, test: false } }, head);
    const train = await request({ Train: { text_column: 0, label_column: 1, test_fraction: 0.2, split_seed: 42, separate_test: false, args } });
    const extracting = train.events.filter((e) => e.event.Train?.event?.Progress?.phase === 'Extracting');
    const first = train.events.find((e) => e.event.Train?.event?.Started);
    const last = extracting[extracting.length - 1];
    const extractMs = last.ms - first.ms;
    await request({ UseTrained: { name: 'bench' } });
    const classify = async (texts, reps) => {
      await request({ Classify: { texts } });
      const times = [];
      for (let i = 0; i < reps; i++) times.push((await request({ Classify: { texts } })).ms);
      return times.sort((a, b) => a - b)[Math.floor(reps / 2)];
    };
    await request({ Load: { slot: 'LanguageModel', source: { Hub: { id: 'gpt2-small-random', url_template: `${server.url}/bench-models/{id}/{file}` } } } });
    const scorer = {
      template: { instruction: 'Classify the sentiment of the review as negative or positive.', input_prefix: 'Review: ', cue: 'Sentiment:', examples: [] },
      labels: ['negative', 'positive'], verbalizers: ['negative', 'positive'], calibrate: false,
    };
    const evaluate = { EvaluatePrompt: { scorer, options: { delimiter: null, has_header: null }, text_column: null, label_column: null } };
    // The first run sends the helpers the model: timed apart.
    const firstEval = (await request(evaluate, promptCsv)).ms;
    const evalMs = (await request(evaluate, promptCsv)).ms;
    const result = {
      line,
      firstEval,
      evalMs,
      extract: { ms: extractMs, texts: last.event.Train.event.Progress.total },
      batch: await classify(batch, 3),
      short: await classify(short, 5),
      one: await classify([long], 5),
    };
    return result;
  } finally {
    await browser.close();
  }
}

const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
const chromium = await (async () => { const b = await launch(NO_WEBGPU_ARGS); const v = b.version(); await b.close(); return v; })();
console.log(`machine: ${cpu}, ${os.cpus().length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; headless Chromium ${chromium}, CPU backend (no WebGPU); debug build of the app`);
const one = await measure(1);
const n = await measure(many);
console.log(`1 worker: ${one.line}\n${many} workers: ${n.line}`);
const row = (name, a, b, unit) => console.log(`| ${name} | ${a.toFixed(0)} ${unit} | ${b.toFixed(0)} ${unit} | ${(a / b).toFixed(2)}x |`);
console.log(`| workload | 1 worker | ${many} workers | speed-up |\n|---|---|---|---|`);
row(`head-mode feature extraction, ${one.extract.texts} reviews (max 128 tokens)`, one.extract.ms, n.extract.ms, 'ms');
row(`classify ${batch.length} reviews`, one.batch, n.batch, 'ms');
row(`classify ${short.length} short reviews (~32 tokens)`, one.short, n.short, 'ms');
row('classify 1 text of ~128 tokens (does not split)', one.one, n.one, 'ms');
row('prompt evaluation, 48 reviews, GPT-2-small shape (helpers hold the model)', one.evalMs, n.evalMs, 'ms');
row('the same, first run (the helpers load the model)', one.firstEval, n.firstEval, 'ms');
console.log(`feature extraction: ${(one.extract.texts / one.extract.ms * 1000).toFixed(1)} texts/s on 1 worker, ${(n.extract.texts / n.extract.ms * 1000).toFixed(1)} on ${many}`);
server.close?.();
process.exit(0);
