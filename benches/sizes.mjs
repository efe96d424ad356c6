// What a visitor downloads: every wasm and JS file of a built app (a trunk dist), raw, gzipped
// (level 9) and brotli-compressed (quality 11), with the totals.
// Usage: node benches/sizes.mjs <dist>
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const dist = process.argv[2];
const files = fs.readdirSync(dist).filter((f) => /\.(wasm|js)$/.test(f)).sort();
const mb = (n) => (n / 1e6).toFixed(2);
const total = { raw: 0, gz: 0, br: 0 };
console.log('| file | raw | gzip | brotli |\n|---|---|---|---|');
for (const f of files) {
  const bytes = fs.readFileSync(path.join(dist, f));
  const gz = zlib.gzipSync(bytes, { level: 9 }).length;
  const br = zlib.brotliCompressSync(bytes, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 11, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }).length;
  total.raw += bytes.length; total.gz += gz; total.br += br;
  console.log(`| ${f} | ${mb(bytes.length)} MB | ${mb(gz)} MB | ${mb(br)} MB |`);
}
console.log(`| all | ${mb(total.raw)} MB | ${mb(total.gz)} MB | ${mb(total.br)} MB |`);
