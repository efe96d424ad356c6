// transformers.js (the peer) decoding with a GPT-2 small-shaped model in headless Chromium on the
// CPU (onnxruntime-web wasm, one thread, as Tunelab's engine): the time to the first token after
// the 64-token prompt of Tunelab's benchmark (examples/common/decode_bench.rs), and greedy
// decoding's tokens/s over 32 more, medians of 3 runs after a warm-up. First checks that its
// greedy tokens equal PyTorch's for the same weights (benches/export_gpt2_onnx.py writes them),
// so that it times the computation Tunelab's row does.
// Usage (scripts/bench.sh peer-gpt2 prepares the model and the package):
//   node benches/transformersjs_gpt2.mjs <folder with node_modules/@huggingface/transformers> <model dir>
import fs from 'node:fs';
import path from 'node:path';
import { withPeerPage, TJS_ENV } from '../tests/e2e/harness.mjs';

const [tjsRoot, modelDir] = process.argv.slice(2);
const pkg = path.join(tjsRoot, 'node_modules/@huggingface/transformers');
const version = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8')).version;
const expected = JSON.parse(fs.readFileSync(path.join(modelDir, 'greedy.json'), 'utf8'));
const name = path.basename(modelDir);

const page = `<!doctype html><meta charset="utf-8"><script type="module">
import { AutoModelForCausalLM, Tensor, env } from '/tjs/transformers.min.js';
${TJS_ENV}
window.run = async (name, prompt, checkTokens) => {
  const model = await AutoModelForCausalLM.from_pretrained(name, { dtype: 'fp32', device: 'wasm' });
  const inputs = new Tensor('int64', BigInt64Array.from(prompt.map(BigInt)), [1, prompt.length]);
  const generate = async (n) => {
    const out = await model.generate({ inputs, max_new_tokens: n, min_new_tokens: n, do_sample: false });
    return Array.from(out.data, Number).slice(prompt.length);
  };
  const check = await generate(checkTokens);
  const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const first = [], rates = [];
  for (let run = 0; run <= 3; run++) {
    const t0 = Date.now();
    await generate(1);
    const t1 = Date.now();
    await generate(33);
    const t2 = Date.now();
    if (run > 0) {
      first.push(t1 - t0);
      // The first token of the 33 costs what the run before measured.
      rates.push(32000 / (t2 - t1 - (t1 - t0)));
    }
  }
  return { check, first: median(first), rate: median(rates), ua: navigator.userAgent };
};
window.ready = true;
</script>`;

const r = await withPeerPage({ tjsRoot, modelDir, page }, (p) =>
  p.evaluate(([n, prompt, k]) => window.run(n, prompt, k), [name, expected.prompt, expected.greedy.length]));
// Timing a different computation would compare nothing.
if (JSON.stringify(r.check) !== JSON.stringify(expected.greedy)) {
  throw new Error(`transformers.js' greedy tokens ${r.check} are not PyTorch's ${expected.greedy}`);
}
console.log(`browser: ${r.ua}`);
console.log(`transformers.js ${version}, onnxruntime-web wasm, one thread; GPT-2 small shape (random weights), fp32, KV cache`);
console.log(`greedy tokens: PyTorch's ${expected.greedy.length}, the same`);
console.log(`transformers.js GPT-2 small: prefill 64 tokens -> first token ${r.first} ms; decode ${r.rate.toFixed(1)} tokens/s over 32 (medians of 3)`);
