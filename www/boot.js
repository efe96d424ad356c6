// Starts the page's app (the UI's wasm). A file rather than Trunk's inline script, so that the
// page's Content-Security-Policy can refuse every inline script (index.html says which).
import init from './tunelab.js';

await init({ module_or_path: new URL('./tunelab_bg.wasm', import.meta.url) });
