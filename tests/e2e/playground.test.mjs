// The playground in a real browser: WebGPU inference with streamed tokens, and the CPU fallback.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { serve, launch, open, screenshot } from "./harness.mjs";

// SwiftShader runs WebGPU at ~0.1–0.2 GFLOP/s and compiles shaders on first use: be patient.
const LOAD_TIMEOUT = 240_000;
const GENERATE_TIMEOUT = 240_000;

let server;
before(async () => { server = await serve(); });
after(async () => { await server?.close(); });

async function completeAndCount(page) {
  await page.getByTestId("complete").click();
  // Wait for generation to finish (the button comes back) with at least 5 tokens streamed.
  await page.waitForFunction(() => {
    const n = parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10);
    const done = !document.querySelector("[data-testid=complete]")?.disabled;
    return n >= 5 && done;
  }, null, { timeout: GENERATE_TIMEOUT });
  return parseInt(await page.getByTestId("token-count").textContent(), 10);
}

test("runs on WebGPU and streams a completion", { timeout: LOAD_TIMEOUT + GENERATE_TIMEOUT + 60_000 }, async () => {
  const browser = await launch({ webgpu: true });
  try {
    const { page, problems } = await open(browser, server.url);
    await page.waitForFunction(() => /Ready|Could not/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD_TIMEOUT });
    await screenshot(page, "webgpu-ready");
    assert.equal(await page.getByTestId("error").count(), 0, await page.getByTestId("error").textContent().catch(() => ""));
    // Falling back to the CPU does not pass this test: the WebGPU path must really run.
    assert.equal(await page.getByTestId("backend").textContent(), "Backend: WebGPU");
    assert.match(await page.getByTestId("adapter").textContent(), /Adapter: .+/);
    assert.equal(await page.getByTestId("software-adapter").count(), 1, "SwiftShader is a fallback adapter and gets the badge");
    // Track streaming: the completion must grow over time, not appear at once.
    await page.evaluate(() => {
      window.__lengths = [];
      const el = document.querySelector("[data-testid=completion]");
      new MutationObserver(() => window.__lengths.push(el.textContent.length)).observe(el, { childList: true, characterData: true, subtree: true });
    });
    const tokens = await completeAndCount(page);
    assert.ok(tokens >= 5, `only ${tokens} tokens`);
    const lengths = await page.evaluate(() => window.__lengths);
    assert.ok(new Set(lengths).size >= 3, `completion did not stream: ${JSON.stringify(lengths)}`);
    assert.ok((await page.getByTestId("completion").textContent()).length > 0);
    await screenshot(page, "webgpu-completion");
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test("falls back to the CPU when WebGPU is unavailable, and says why", { timeout: LOAD_TIMEOUT + GENERATE_TIMEOUT }, async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser, server.url);
    await page.waitForFunction(() => /Ready|Could not/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD_TIMEOUT });
    assert.equal(await page.getByTestId("backend").textContent(), "Backend: CPU");
    assert.match(await page.getByTestId("fallback-reason").textContent(), /WebGPU|adapter/);
    assert.ok((await completeAndCount(page)) >= 5);
    await screenshot(page, "cpu-fallback");
  } finally {
    await browser.close();
  }
});
