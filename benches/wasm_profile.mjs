// Chromium's sampling profiler on the engine's CPU path in wasm: opens the wasm-bindgen test
// page that `wasm-bindgen-test-runner` serves without a browser of its own (NO_HEADLESS), starts
// the profiler when the test logs "profile: start", stops it when the test ends, and prints the
// functions with the most self time (wasm functions by their Rust names).
// Usage (scripts/bench.sh wasm-profile runs the server and this):
//   node benches/wasm_profile.mjs http://127.0.0.1:PORT [rows]
import { launch, NO_WEBGPU_ARGS } from '../tests/e2e/harness.mjs';

const [url, rows = '25'] = process.argv.slice(2);
const browser = await launch(NO_WEBGPU_ARGS);
const page = await browser.newPage();
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
let started = false;
page.on('console', async (m) => {
  const text = m.text();
  if (text === 'profile: start') {
    await cdp.send('Profiler.start');
    started = true;
  } else if (text.startsWith('profiled') || text.startsWith('browser')) {
    console.log(text);
  }
});
await page.goto(url);
await page.waitForFunction(() => document.body.innerText.includes('test result'), null, { timeout: 600000 });
if (!started) throw new Error('the test never logged "profile: start"');
const { profile } = await cdp.send('Profiler.stop');
await browser.close();

const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
let total = 0;
profile.samples.forEach((id, i) => {
  const frame = nodes.get(id).callFrame;
  const name = frame.functionName || `(anonymous ${frame.url.split('/').pop()})`;
  const dt = profile.timeDeltas[i] || 0;
  self.set(name, (self.get(name) || 0) + dt);
  total += dt;
});
const busy = total - (self.get('(idle)') || 0);
console.log(`self time, ${(busy / 1000).toFixed(0)} ms busy of ${(total / 1000).toFixed(0)} ms profiled:`);
for (const [name, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(rows))) {
  if (name === '(idle)') continue;
  // Rust's symbol hash (::h0123...) dropped.
  const short = name.replace(/::h[0-9a-f]{16}$/, '').slice(0, 140);
  console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${short}`);
}
