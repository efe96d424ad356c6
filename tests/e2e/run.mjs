// End-to-end tests: the built app (TUNELAB_DIST) served on 127.0.0.1, driven in headless Chromium.
// Usage: TUNELAB_DIST=<trunk dist> node tests/e2e/run.mjs [name filter]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serve, launch, openPage, assert, runTests, WEBGPU_ARGS, NO_WEBGPU_ARGS } from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const dist = process.env.TUNELAB_DIST || path.join(root, 'dist');
const shots = path.join(here, 'out');
fs.mkdirSync(shots, { recursive: true });
assert(fs.existsSync(path.join(dist, 'index.html')), `no build at ${dist}: run trunk build first`);

const server = await serve({ '/models/': path.join(root, 'tests/fixtures/models'), '/': dist });
const LOAD_TIMEOUT = 120_000;

async function backendLine(page) {
  const status = page.locator('#backend-status:not([data-backend="probing"])');
  await status.waitFor({ timeout: LOAD_TIMEOUT });
  return { kind: await status.getAttribute('data-backend'), text: await status.textContent() };
}

const tests = [
  ['shell loads and detects WebGPU (SwiftShader)', async () => {
    const browser = await launch(WEBGPU_ARGS);
    try {
      const page = await openPage(browser, server.url);
      await page.goto(server.url + '/');
      const { kind, text } = await backendLine(page);
      assert(kind === 'webgpu', `expected WebGPU, the status line says: ${text}`);
      assert(/^Backend: WebGPU \(.+\)$/.test(text), `status line: ${text}`);
      for (const name of ['Classify', 'Fine-tune', 'Prompt', 'Models']) {
        await page.getByRole('link', { name, exact: true }).click();
        await page.locator(`main h1:text-is("${name}")`).waitFor();
      }
      await page.screenshot({ path: path.join(shots, 'shell-webgpu.png'), fullPage: true });
      page.assertNoErrors();
      page.assertPrivate();
      console.log(`  ${text}`);
    } finally {
      await browser.close();
    }
  }],
  ['shell falls back to the CPU without WebGPU', async () => {
    const browser = await launch(NO_WEBGPU_ARGS);
    try {
      const page = await openPage(browser, server.url, { width: 390, height: 844 });
      await page.goto(server.url + '/');
      const { kind, text } = await backendLine(page);
      assert(kind === 'cpu', `expected the CPU fallback, the status line says: ${text}`);
      assert(/^Backend: CPU \(.+\)$/.test(text), `status line: ${text}`);
      await page.screenshot({ path: path.join(shots, 'shell-cpu-phone.png'), fullPage: true });
      page.assertNoErrors();
      page.assertPrivate();
      console.log(`  ${text}`);
    } finally {
      await browser.close();
    }
  }],
];

const failed = await runTests(tests, process.argv[2]);
await server.close();
console.log(`e2e: ${tests.length - failed} passed, ${failed} failed; screenshots in ${path.relative(root, shots)}`);
process.exit(failed ? 1 : 0);
