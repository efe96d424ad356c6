// transformers.js (the peer to beat) on all-MiniLM-L6-v2 in headless Chromium, CPU (onnxruntime-web
// wasm, one thread as in a page without cross-origin isolation, like Tunelab's CPU backend):
// sentence embeddings per second at batch 1 x 128 tokens and batch 32 x 32 tokens, and 1,000
// reviews in batches of 32 (feature extraction), with the texts and timing of `scripts/bench.sh wasm`. Checks first that its embeddings equal the golden
// sentence-transformers ones, so the two measure the same computation.
// Usage (scripts/bench.sh transformersjs prepares the ONNX export and the package):
//   node benches/transformersjs.mjs <folder with node_modules/@huggingface/transformers> <model dir>
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { withPeerPage, TJS_ENV } from '../tests/e2e/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..');
const [tjsRoot, modelDir] = process.argv.slice(2);
const pkg = path.join(tjsRoot, 'node_modules/@huggingface/transformers');
const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version;
const golden = JSON.parse(fs.readFileSync(path.join(root, 'tests/fixtures/golden/minilm.golden.json'), 'utf8'));

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { pipeline, env, mean_pooling } from '/tjs/transformers.min.js';
${TJS_ENV}
window.run = async (goldenTexts, long, short, reviews) => {
  const extract = await pipeline('feature-extraction', 'all-MiniLM-L6-v2', { dtype: 'fp32', device: 'wasm' });
  // What the feature-extraction pipeline does (tokenize, run, mean-pool, normalise), with the
  // truncation length of each case.
  const embed = async (texts, maxLength) => {
    const inputs = extract.tokenizer(texts, { padding: true, truncation: true, max_length: maxLength });
    const out = await extract.model(inputs);
    return { dims: inputs.input_ids.dims, emb: mean_pooling(out.last_hidden_state, inputs.attention_mask).normalize(2, -1) };
  };
  const check = (await embed(goldenTexts, 128)).emb.tolist();
  const median = async (texts, maxLength, warmup, runs) => {
    for (let i = 0; i < warmup; i++) await embed(texts, maxLength);
    const times = [];
    for (let i = 0; i < runs; i++) {
      const t0 = Date.now();
      await embed(texts, maxLength);
      times.push(Date.now() - t0);
    }
    return times.sort((a, b) => a - b)[Math.floor(runs / 2)];
  };
  const dims = [(await embed([long], 128)).dims, (await embed(short, 32)).dims];
  // Feature extraction of many reviews: batches of 32, longest (in characters) first, at most
  // 128 tokens, as the app's head-only training extracts them (wasm_bench does the same).
  const extraction = async () => {
    const sorted = [...reviews].sort((a, b) => b.length - a.length);
    const t0 = Date.now();
    for (let i = 0; i < sorted.length; i += 32) await embed(sorted.slice(i, i + 32), 128);
    return Date.now() - t0;
  };
  const rounds = [];
  for (let r = 0; r < 2; r++) {
    rounds.push({ one: await median([long], 128, 1, 7), many: await median(short, 32, 1, 5), extract: await extraction() });
  }
  return { check, dims, rounds, ua: navigator.userAgent };
};
window.ready = true;
</script>`;

// The texts of scripts/bench.sh wasm: 20 movie reviews joined (truncated to 128 tokens), and the
// first 32 reviews of at least 32 tokens (truncated to 32).
const csv = fs.readFileSync(path.join(root, 'tests/data/movie_reviews.csv'), 'utf8');
const records = csvRecords(csv).slice(1);
const texts = records.map((r) => r[0].trim()).filter((t) => t.length > 0);
const long = texts.slice(0, 20).join(' ');
const reviews = texts.slice(0, 1000);

const result = await withPeerPage({ tjsRoot, modelDir, page }, async (p) => {
  // Reviews with at least 32 tokens, chosen with transformers.js' own tokenizer in the page.
  const short = await p.evaluate(async (texts) => {
    const { AutoTokenizer } = await import('/tjs/transformers.min.js');
    const tok = await AutoTokenizer.from_pretrained('all-MiniLM-L6-v2');
    return texts.filter((t) => tok(t).input_ids.dims[1] >= 32).slice(0, 32);
  }, texts.slice(0, 400));
  return p.evaluate(([g, l, s, r]) => window.run(g, l, s, r), [golden.texts, long, short, reviews]);
});
let worst = 0;
golden.sentence_embedding.forEach((row, i) => row.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - result.check[i][j])); }));
// Timing a different computation would compare nothing.
if (!(worst <= 1e-4)) throw new Error(`transformers.js embeddings differ from the golden ones by ${worst}`);
console.log(`browser: ${result.ua}`);
console.log(`transformers.js ${version}, onnxruntime-web wasm, one thread; all-MiniLM-L6-v2 fp32 (ONNX export of the same safetensors)`);
console.log(`embeddings vs sentence-transformers golden: max abs error ${worst.toExponential(2)}`);
console.log(`input shapes: ${JSON.stringify(result.dims)}`);
result.rounds.forEach(({ one, many, extract }, r) => console.log(
  `round ${r + 1} transformers.js: batch 1 x 128: ${(1000 / one).toFixed(1)} sentences/s (${one} ms); batch 32 x 32: ${(32000 / many).toFixed(1)} sentences/s (${many} ms); ${reviews.length} reviews in batches of 32 (<= 128 tokens): ${(1000 * reviews.length / extract).toFixed(1)} texts/s (${(extract / 1000).toFixed(1)} s)`));

function csvRecords(text) {
  const rows = []; let row = []; let field = ''; let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (c === '"') quoted = false; else field += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') { row.push(field); field = ''; }
    else if (c === '\n') { row.push(field); rows.push(row); row = []; field = ''; }
    else if (c !== '\r') field += c;
  }
  if (field || row.length) { row.push(field); rows.push(row); }
  return rows;
}
