// Chromium's sampling profiler on the engine's CPU path in wasm: opens the wasm-bindgen test
// page that `wasm-bindgen-test-runner` serves without a browser of its own (NO_HEADLESS), runs
// the profiler between each "profile: start ..." and "profile: stop ..." line the test logs, and
// prints, for each, the functions with the most self time (wasm functions by their Rust names).
// Usage (scripts/bench.sh wasm-profile runs the server and this):
//   node benches/wasm_profile.mjs http://127.0.0.1:PORT [rows]
import { launch, NO_WEBGPU_ARGS } from '../tests/e2e/harness.mjs';

const [url, rows = '25'] = process.argv.slice(2);
const browser = await launch(NO_WEBGPU_ARGS);
const page = await browser.newPage();
const cdp = await page.context().newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 200 });
let sections = 0;
let pending = Promise.resolve();
page.on('console', (m) => {
  const text = m.text();
  if (text.startsWith('profile: start')) {
    console.log(`\n${text.slice('profile: start '.length)}:`);
    pending = pending.then(() => cdp.send('Profiler.start'));
  } else if (text.startsWith('profile: stop')) {
    sections += 1;
    console.log(text.slice('profile: stop '.length));
    pending = pending.then(async () => report((await cdp.send('Profiler.stop')).profile));
  }
});
await page.goto(url);
await page.waitForFunction(() => document.body.innerText.includes('test result'), null, { timeout: 600000 });
await pending;
await browser.close();
if (!sections) throw new Error('the test logged no "profile: start" and "profile: stop" lines');

function report(profile) {
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
  const top = [...self].filter(([name]) => name !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, Number(rows));
  for (const [name, us] of top) {
    // Rust's symbol hash (::h0123...) dropped.
    const short = name.replace(/::h[0-9a-f]{16}$/, '').slice(0, 140);
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms ${((100 * us) / busy).toFixed(1).padStart(5)} %  ${short}`);
  }
  // Who calls the functions named in PROFILE_CALLERS (comma-separated parts of names): their
  // self time by chain of callers, PROFILE_DEPTH (3) deep.
  const wanted = (process.env.PROFILE_CALLERS || '').split(',').filter(Boolean);
  const depth = Number(process.env.PROFILE_DEPTH || 3);
  if (!wanted.length) return;
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const chains = new Map();
  profile.samples.forEach((id, i) => {
    const name = nodes.get(id).callFrame.functionName;
    if (!wanted.some((w) => name.includes(w))) return;
    const chain = [];
    for (let at = parent.get(id); at !== undefined && chain.length < depth; at = parent.get(at)) {
      chain.push(nodes.get(at).callFrame.functionName.replace(/::h[0-9a-f]{16}$/, '').slice(-70));
    }
    const key = `${name.replace(/::h[0-9a-f]{16}$/, '').slice(-50)} <- ${chain.join(' <- ')}`;
    chains.set(key, (chains.get(key) || 0) + (profile.timeDeltas[i] || 0));
  });
  for (const [key, us] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, 15)) {
    console.log(`${(us / 1000).toFixed(1).padStart(9)} ms  ${key}`);
  }
}
