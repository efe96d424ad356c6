// What a visitor downloads: every wasm and JS file of a built app (a trunk dist), raw, gzipped
// (level 9) and brotli-compressed (quality 11), with the totals: all files; what every browser
// downloads before its first result (the page and the CPU-only engine worker, `worker_cpu`, all
// that a browser without WebGPU ever downloads); and what a browser with WebGPU downloads after
// that, while the page already answers (the WebGPU engine worker, which then takes over).
// Usage: node benches/sizes.mjs <dist>
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dist = process.argv[2];
const files = fs.readdirSync(dist).filter((f) => /\.(wasm|js)$/.test(f)).sort();
const mb = (n) => (n / 1e6).toFixed(2);
const cpuWorker = (f) => f.startsWith('worker_cpu');
const gpuWorker = (f) => f.startsWith('worker') && !cpuWorker(f);
const totals = {
  all: { raw: 0, gz: 0, br: 0, pick: () => true },
  'before the first result, every browser (page + worker_cpu)': { raw: 0, gz: 0, br: 0, pick: (f) => !gpuWorker(f) },
  'then, with WebGPU (worker)': { raw: 0, gz: 0, br: 0, pick: gpuWorker },
};
console.log('| file | raw | gzip | brotli |\n|---|---|---|---|');
for (const f of files) {
  const bytes = fs.readFileSync(path.join(dist, f));
  const gz = zlib.gzipSync(bytes, { level: 9 }).length;
  const br = zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length;
  for (const t of Object.values(totals)) {
    if (t.pick(f)) { t.raw += bytes.length; t.gz += gz; t.br += br; }
  }
  console.log(`| ${f} | ${mb(bytes.length)} MB | ${mb(gz)} MB | ${mb(br)} MB |`);
}
for (const [name, t] of Object.entries(totals)) {
  console.log(`| ${name} | ${mb(t.raw)} MB | ${mb(t.gz)} MB | ${mb(t.br)} MB |`);
}
