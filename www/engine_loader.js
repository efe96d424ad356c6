// Starts an engine worker: the wasm-bindgen script of the build named by `?engine=` (`worker`,
// with WebGPU, or `worker_cpu`), then its wasm. A file of its own rather than Trunk's loader
// shim, which leaves a failed start silent (an unhandled rejection inside the worker reaches no
// `error` event of the page's Worker object): here the page is told, as a crash, and says why.
const engine = new URL(self.location.href).searchParams.get('engine') === 'worker' ? 'worker' : 'worker_cpu';
importScripts(`./${engine}.js`);
wasm_bindgen({ module_or_path: `./${engine}_bg.wasm` }).catch((e) => {
  const message = `${engine}_bg.wasm did not load: ${(e && e.message) || e}`;
  self.postMessage({ json: JSON.stringify({ id: 0, event: { Crashed: { message } } }) });
});
