// Models from the Hugging Face Hub in the playground, against a local stand-in for the Hub (harness.serveHub:
// the tiny repositories of cli/tests/fixtures/hub, with CORS): "GPT-2 + a fresh H-Net encoder" built in the
// worker from a model with its own tokenizer and sharded weights, per-file download progress, the chunk view
// and completion on it, fine-tuning with GPT-2 frozen, the Cache API on a second load, the question before a
// large download, a missing repository, and embed mode naming a Hub model in its URL.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { readFileSync } from "node:fs";
import { serve, serveHub, launch, open, screenshot, scratch, ROOT } from "./harness.mjs";

const LOAD = 240_000;
const WORK = 300_000;
const CLI = process.env.HNET_GPT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/hnet-gpt/target"), "debug/hnet-gpt");
const TEXT = "def add(a, b):\n    return a + b\n\n\nclass Stack:\n    def push(self, item):\n        self.items.append(item)\n";

// A config of GPT-2 medium's size: enough for the page to ask before downloading (its weights are never asked for).
const BIG = JSON.stringify({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 1024, n_layer: 24, n_head: 16 });
// GPT-2 XL's size (1.5B parameters): more than the page's 4 GB can convert (its weights are never asked for).
const HUGE = JSON.stringify({ architectures: ["GPT2LMHeadModel"], model_type: "gpt2", vocab_size: 50257, n_positions: 1024, n_embd: 1600, n_layer: 48, n_head: 25 });

let server, hub, browser;
before(async () => {
  server = await serve();
  const fixture = (f) => readFileSync(join(ROOT, "cli/tests/fixtures/hub/tiny-gpt2", f));
  hub = await serveHub({
    "hnet-test/big/config.json": Buffer.from(BIG),
    "hnet-test/huge/config.json": Buffer.from(HUGE),
    // Hostile servers: one that answers and then never sends the body; one that declares 5 GiB of weights.
    "hnet-test/stalled/config.json": (req, res, cors) => { res.writeHead(200, { ...cors, "content-length": 4096 }); res.write("{"); },
    "hnet-test/oversized/config.json": fixture("config.json"),
    "hnet-test/oversized/tokenizer.json": readFileSync(join(ROOT, "public/tokenizer.json")),
    "hnet-test/oversized/model.safetensors": (req, res, cors) => { res.writeHead(200, { ...cors, "content-length": 5 * 2 ** 30 }); res.write("x"); },
    // A Qwen2 of a few layers with fill-in-the-middle tokens (model/tests/fixtures, made by scripts/fixtures/gen_families.py).
    ...Object.fromEntries(["config.json", "model.safetensors", "tokenizer.json"].map((f) =>
      [`hnet-test/tiny-qwen2/${f}`, readFileSync(join(ROOT, "model/tests/fixtures/hf-tiny-qwen2", f))])),
    // A Llama of a few layers, and the same with its weights cut off mid-tensor.
    ...Object.fromEntries(["config.json", "model.safetensors", "tokenizer.json"].map((f) =>
      [`hnet-test/tiny-llama/${f}`, readFileSync(join(ROOT, "model/tests/fixtures/hf-tiny-llama", f))])),
    ...Object.fromEntries(["config.json", "tokenizer.json"].map((f) =>
      [`hnet-test/cut-llama/${f}`, readFileSync(join(ROOT, "model/tests/fixtures/hf-tiny-llama", f))])),
    "hnet-test/cut-llama/model.safetensors": (() => {
      const whole = readFileSync(join(ROOT, "model/tests/fixtures/hf-tiny-llama/model.safetensors"));
      return whole.subarray(0, whole.length - 100);
    })(),
  });
  browser = await launch({ webgpu: true });
});
after(async () => { await browser?.close(); await hub?.close(); await server?.close(); });

async function ready(page) {
  await page.waitForFunction(() => /^Ready|Could not|No model/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD });
}

const modelText = (page) => page.evaluate(() => document.querySelector("[data-testid=model]")?.textContent ?? "");

test("a Hub model with a fresh H-Net encoder: progress per file, chunks, completion, fine-tuning, cache, errors", { timeout: 20 * 60_000 }, async (t) => {
  // What the CLI makes of the same repository, pulled from the same stand-in Hub (asynchronously: the stand-in
  // serves from this very process).
  const dir = scratch(t, "hnet-e2e-hub-");
  const env = { ...process.env, HF_ENDPOINT: hub.url, HF_HOME: join(dir, "hf") };
  const run = promisify(execFile);
  await run(CLI, ["pull", "hnet-test/tiny-codegpt", "--out", join(dir, "code.safetensors")], { env });
  const ids = JSON.parse((await run(CLI, ["tokenize", "--ids", "--checkpoint", join(dir, "code.safetensors"), TEXT])).stdout);

  const { page, problems } = await open(browser, `${server.url}?hub=${encodeURIComponent(hub.url)}`);
  await ready(page);
  await page.getByTestId("editor").fill(TEXT);
  await page.evaluate(() => {
    window.__files = new Set();
    new MutationObserver(() => document.querySelectorAll("[data-testid=download-progress]").forEach((e) => window.__files.add(e.dataset.file)))
      .observe(document.body, { childList: true, subtree: true });
  });
  await page.getByTestId("hub-repo").fill("hnet-test/tiny-codegpt");
  assert.ok(await page.getByTestId("hub-hybrid").isChecked(), "GPT-2 + H-Net encoder is the default");
  await page.getByTestId("hub-load").click();
  await page.waitForFunction(() => /hybrid .* hnet-test\/tiny-codegpt from the Hub \+ a fresh H-Net encoder/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  const files = await page.evaluate(() => [...window.__files].sort());
  for (const f of ["config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]) {
    assert.ok(files.includes(f), `no progress bar for ${f}: ${files}`);
  }
  assert.match(await page.getByTestId("model-card").textContent(), /hf:\/\/hnet-test\/tiny-codegpt@main/);
  await screenshot(page, "20-hub-hybrid");

  // The chunk view tokenizes with the model's own tokenizer, as the CLI does.
  await page.waitForFunction((n) => document.querySelectorAll("[data-testid=token]").length === n, ids.length, { timeout: WORK });
  // Completion runs (the model is random: it may stop early at its end-of-text token).
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled && document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
  assert.equal(await page.getByTestId("error").count(), 0);

  // Fine-tuning with the default scope: the H-Net encoder and fusion train, GPT-2 stays frozen.
  await page.getByTestId("snippets").fill([TEXT, TEXT.replace("add", "sub"), TEXT.replace("Stack", "Queue")].join("\n# ---\n"));
  await page.getByTestId("ft-steps").fill("2");
  await page.getByTestId("ft-steps").dispatchEvent("change");
  assert.match(await page.getByTestId("ft-scope").textContent(), /GPT-2 frozen/);
  await page.getByTestId("train").click();
  await page.waitForFunction(() => /before → .* after/.test(document.querySelector("[data-testid=perplexity]")?.textContent ?? ""), null, { timeout: WORK });
  const losses = JSON.parse(await page.getByTestId("loss-curve").getAttribute("data-losses"));
  assert.equal(losses.length, 2);
  assert.ok(losses.every(Number.isFinite), `${losses}`);

  // Loaded again after a reload: from the Cache API, no weights fetched twice.
  const weightsFetched = () => hub.requests.filter((r) => r.startsWith("hnet-test/tiny-codegpt/model-")).length;
  const before = weightsFetched();
  await page.reload();
  const second = { page };
  await ready(second.page);
  await second.page.getByTestId("hub-repo").fill("hnet-test/tiny-codegpt");
  await second.page.getByTestId("hub-load").click();
  await second.page.waitForFunction(() => /tiny-codegpt from the Hub/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  assert.equal(weightsFetched(), before, "the second load fetched the weights again");

  // A large model asks first; cancelling loads nothing.
  const loaded = await modelText(second.page);
  await second.page.getByTestId("hub-repo").fill("hnet-test/big");
  await second.page.getByTestId("hub-load").click();
  await second.page.getByTestId("hub-confirm").waitFor({ timeout: WORK });
  assert.match(await second.page.getByTestId("hub-confirm").textContent(), /hnet-test\/big: 35\d\.\dM parameters \(24 layers × 1024 wide.* Continue\?/);
  await screenshot(second.page, "21-hub-confirm");
  await second.page.getByTestId("hub-confirm").getByRole("button", { name: "Cancel" }).click();
  assert.equal(await modelText(second.page), loaded);
  assert.ok(!hub.requests.some((r) => r.startsWith("hnet-test/big/") && !r.endsWith("config.json")), "weights of the big model were fetched");

  // A repository that does not exist: a clear error, the loaded model stays.
  await second.page.getByTestId("hub-repo").fill("hnet-test/nope");
  await second.page.getByTestId("hub-load").click();
  await second.page.getByTestId("error").waitFor({ timeout: WORK });
  assert.match(await second.page.getByTestId("error").textContent(), /no model `hnet-test\/nope` at revision `main`.*previous model is still loaded/);
  // Beside the panel whose action failed, not at the top of the page.
  assert.equal(await second.page.getByTestId("error").getAttribute("data-place"), "Models");
  assert.equal(await modelText(second.page), loaded);
  // A server that stalls is given up on with a message; one that declares more than the page can hold is refused
  // before the body is read. The loaded model stays either way.
  await second.page.getByTestId("hub-repo").fill("hnet-test/stalled");
  await second.page.getByTestId("hub-load").click();
  await second.page.waitForFunction(() => /no data for 30 s; the server stalled/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""), null, { timeout: 60_000 });
  assert.equal(await modelText(second.page), loaded);
  await second.page.getByTestId("hub-repo").fill("hnet-test/oversized");
  await second.page.getByTestId("hub-load").click();
  await second.page.waitForFunction(() => /oversized/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""), null, { timeout: WORK })
    .catch(async (e) => { throw new Error(`${e.message}; the page shows: ${await second.page.locator("body").innerText()}`); });
  assert.match(await second.page.getByTestId("error").textContent(), /declares 5368709120 bytes, over this page's limit/);
  assert.equal(await modelText(second.page), loaded);
  // The stand-in Hub's 404s are expected (no model.safetensors in a sharded repository, the missing repository).
  assert.deepEqual(problems.filter((p) => !p.includes(hub.url)), []);
});

test("embed mode names a Hub model in its URL", { timeout: LOAD + WORK }, async () => {
  const code = encodeURIComponent("def add(a, b):\n    return a + b\n");
  const url = `${server.url}?embed=1&mode=chunks&model=hf:hnet-test/tiny-gpt2&hybrid=1&hub=${encodeURIComponent(hub.url)}&code=${code}`;
  const { page } = await open(browser, url, { viewport: { width: 390, height: 700 } });
  await page.getByTestId("embed").waitFor();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=chunk]").length > 0, null, { timeout: LOAD + WORK });
  assert.match(await modelText(page), /hybrid .* hnet-test\/tiny-gpt2 from the Hub/);
  await screenshot(page, "22-embed-hub");
});

test("an unreachable Hub is a sentence, not a raw error object", { timeout: LOAD }, async () => {
  const { page } = await open(browser, `${server.url}?model=hf:hnet-test/tiny-gpt2&hub=${encodeURIComponent("http://127.0.0.1:9")}`);
  await page.getByTestId("error").waitFor({ timeout: LOAD });
  const text = await page.getByTestId("error").textContent();
  assert.match(text, /could not reach http:\/\/127\.0\.0\.1:9\/.*offline, refused, or blocked/);
  assert.doesNotMatch(text, /\{\}/);
});

test("a full storage quota: the model still loads and says it was not kept, saving says why it failed, the page goes on", { timeout: LOAD + WORK }, async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  // A quota of 64 kB for the page's origin: the Cache API cannot keep the weights, IndexedDB cannot keep a model.
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Storage.overrideQuotaForOrigin", { origin: new URL(server.url).origin, quotaSize: 64 * 1024 });
  await page.goto(`${server.url}?model=hf:hnet-test/tiny-gpt2&hub=${encodeURIComponent(hub.url)}&gpu=0`);
  await page.waitForFunction(() => /^Ready|Could not/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD });
  assert.match(await page.getByTestId("model").textContent(), /tiny-gpt2 from the Hub/);
  assert.match(await page.getByTestId("status").textContent(),
    /^Ready .* · .* was not kept for the next visit: this site's storage in the browser is full \(quota exceeded\)/);
  await page.getByTestId("snippets").fill([TEXT, TEXT.replace("add", "sub"), TEXT.replace("Stack", "Queue")].join("\n# ---\n"));
  await page.getByTestId("ft-steps").fill("1");
  await page.getByTestId("ft-steps").dispatchEvent("change");
  await page.getByTestId("train").click();
  await page.waitForFunction(() => /before → .* after/.test(document.querySelector("[data-testid=perplexity]")?.textContent ?? ""), null, { timeout: WORK });
  await page.getByTestId("save").click();
  await page.getByTestId("error").waitFor({ timeout: WORK });
  assert.equal(await page.getByTestId("error").getAttribute("data-place"), "FineTune");
  assert.match(await page.getByTestId("error").textContent(), /Could not save: this site's storage in the browser is full \(quota exceeded\)/);
  assert.doesNotMatch(await page.getByTestId("model").textContent(), /saved in this browser/);
  // The page goes on: the fine-tuned model completes.
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled
    && (parseInt(document.querySelector("[data-testid=token-count]").textContent, 10) > 0
        || document.querySelector("[data-testid=completion-note]").textContent === "no completion"), null, { timeout: WORK });
  await page.close();
});

test("fill-in-the-middle at the cursor with a Qwen2 model: the ghost is the CLI's middle, typed indentation merged", { timeout: LOAD + WORK }, async (t) => {
  const dir = scratch(t, "hnet-e2e-fim-");
  const env = { ...process.env, HF_ENDPOINT: hub.url, HF_HOME: join(dir, "hf") };
  const run = promisify(execFile);
  const ckpt = join(dir, "qwen2.safetensors");
  await run(CLI, ["pull", "hnet-test/tiny-qwen2", "--out", ckpt], { env });
  // The cursor after the indentation the editor typed on the line under `def`, code after it.
  const PREFIX = "def mul(a, b):\n    ";
  const SUFFIX = "\n\nprint(mul(2, 3))\n";
  const greedy = ["--temperature", "0", "--max-new-tokens", "64", "--scope", "free"];
  const cli = (await run(CLI, ["generate", "--checkpoint", ckpt, "--prompt", PREFIX, "--suffix", SUFFIX, ...greedy])).stdout.replace(/\n$/, "");

  const { page, problems } = await open(browser, `${server.url}?hub=${encodeURIComponent(hub.url)}`);
  await ready(page);
  await page.getByTestId("hub-repo").fill("hnet-test/tiny-qwen2");
  await page.getByTestId("hub-hybrid").uncheck();
  await page.getByTestId("hub-load").click();
  await page.waitForFunction(() => /tiny-qwen2 from the Hub/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  await page.getByTestId("editor").fill(PREFIX + SUFFIX);
  // From the end (the empty last line) up to the indented line, then to its end.
  await page.keyboard.press("Control+End");
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowUp");
  await page.keyboard.press("End");
  await page.locator("#temperature").fill("0");
  await page.locator("#temperature").dispatchEvent("change");
  await page.locator("#scope").selectOption("free");
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled && document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
  assert.equal(await page.getByTestId("error").count(), 0);
  const ghost = (await page.locator(".cm-ghost").count()) ? await page.locator(".cm-ghost").textContent() : "";
  assert.equal(ghost, cli.trim() ? cli : "", "the page's middle is not the CLI's");
  await screenshot(page, "23-fim");
  if (ghost) {
    // Tab puts the middle at the cursor, the code after it stays after it.
    await page.getByTestId("editor").focus();
    await page.keyboard.press("Tab");
    const text = await page.evaluate(() => [...document.querySelectorAll(".cm-content .cm-line")].map((l) => l.textContent).join("\n"));
    // The editor draws control characters (a random tiny model writes some) as their Unicode pictures: ␗ for \x17.
    const drawn = (s) => s.replace(/[\x00-\x08\x0b-\x1f]/g, (c) => String.fromCharCode(0x2400 + c.charCodeAt(0)));
    assert.equal(text, drawn(PREFIX + ghost + SUFFIX));
  }
  assert.deepEqual(problems.filter((p) => !p.includes(hub.url)), []);
});

test("a token table larger than one GPU buffer binding runs on WebGPU in parts; it fine-tunes on the CPU and goes back", { timeout: LOAD + WORK }, async (t) => {
  // The Qwen2 fixture's table is 512 × 32 in f32 (64 KiB); `?max-binding=16384` makes the adapter bind 16 KiB at
  // most (SwiftShader binds 1 GiB): the table goes to WebGPU in four parts, every other weight fits whole.
  const dir = scratch(t, "hnet-e2e-parts-");
  const env = { ...process.env, HF_ENDPOINT: hub.url, HF_HOME: join(dir, "hf") };
  const run = promisify(execFile);
  const ckpt = join(dir, "qwen2.safetensors");
  await run(CLI, ["pull", "hnet-test/tiny-qwen2", "--out", ckpt], { env });
  const PROMPT = "def mul(a, b):\n    return";
  const greedy = ["--temperature", "0", "--max-new-tokens", "64", "--scope", "free"];
  const cli = (await run(CLI, ["generate", "--checkpoint", ckpt, "--prompt", PROMPT, ...greedy])).stdout.replace(/\n$/, "");

  const { page, problems } = await open(browser, `${server.url}?gpu=1&max-binding=16384&hub=${encodeURIComponent(hub.url)}`);
  await ready(page);
  await page.getByTestId("hub-repo").fill("hnet-test/tiny-qwen2");
  await page.getByTestId("hub-hybrid").uncheck();
  await page.getByTestId("hub-load").click();
  await page.waitForFunction(() => /tiny-qwen2 from the Hub/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  // On WebGPU, not sent to the CPU for a weight larger than the binding.
  assert.equal(await page.getByTestId("backend").textContent(), "Backend: WebGPU");
  // The completion is the CLI's (the same logits, looked up and multiplied part by part).
  await page.getByTestId("editor").fill(PROMPT);
  await page.keyboard.press("Control+End");
  await page.locator("#temperature").fill("0");
  await page.locator("#temperature").dispatchEvent("change");
  await page.locator("#scope").selectOption("free");
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled && document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
  const ghost = (await page.locator(".cm-ghost").count()) ? await page.locator(".cm-ghost").textContent() : "";
  assert.equal(ghost, cli.trim() ? cli : "", "the page's completion is not the CLI's");
  // Fine-tuning such a model runs on the CPU (its step reports the worker's memory, not the GPU's), and the tuned
  // model goes back to WebGPU.
  await page.keyboard.press("Escape");
  await page.getByTestId("snippets").fill([TEXT, TEXT.replace("add", "sub")].join("\n# ---\n"));
  await page.getByTestId("ft-steps").fill("1");
  await page.getByTestId("ft-steps").dispatchEvent("change");
  await page.getByTestId("train").click();
  await page.waitForFunction(() => /^Step 1\/1/.test(document.querySelector("[data-testid=train-progress]")?.textContent ?? ""), null, { timeout: WORK });
  assert.match(await page.getByTestId("train-progress").textContent(), /worker memory/);
  await page.waitForFunction(() => /before → .* after/.test(document.querySelector("[data-testid=perplexity]")?.textContent ?? ""), null, { timeout: WORK });
  await page.waitForFunction(() => /fine-tuned here/.test(document.querySelector("[data-testid=model]")?.textContent ?? "") && document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
  assert.equal(await page.getByTestId("backend").textContent(), "Backend: WebGPU");
  const losses = JSON.parse(await page.getByTestId("loss-curve").getAttribute("data-losses"));
  assert.ok(losses.length === 1 && losses.every(Number.isFinite), `${losses}`);
  assert.deepEqual(problems.filter((p) => !p.includes(hub.url)), []);
});

test("a Llama-family model with a fresh H-Net encoder: chunks and a fine-tuning step; weights cut off and a model too large are refused", { timeout: LOAD + WORK }, async () => {
  const { page, problems } = await open(browser, `${server.url}?hub=${encodeURIComponent(hub.url)}`);
  await ready(page);
  await page.getByTestId("editor").fill(TEXT);
  await page.getByTestId("hub-repo").fill("hnet-test/tiny-llama");
  assert.ok(await page.getByTestId("hub-hybrid").isChecked());
  await page.getByTestId("hub-load").click();
  await page.waitForFunction(() => /hybrid .* hnet-test\/tiny-llama from the Hub \+ a fresh H-Net encoder/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  assert.match(await page.getByTestId("model-card").textContent(), /hf:\/\/hnet-test\/tiny-llama@main \+ a fresh H-Net encoder/);
  // The chunk view of the hybrid: tokens in chunks the fresh router cut.
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=token]").length > 10, null, { timeout: WORK });
  // One fine-tuning step with the default scope.
  await page.getByTestId("snippets").fill([TEXT, TEXT.replace("add", "sub")].join("\n# ---\n"));
  await page.getByTestId("ft-steps").fill("1");
  await page.getByTestId("ft-steps").dispatchEvent("change");
  await page.getByTestId("train").click();
  await page.waitForFunction(() => /before → .* after/.test(document.querySelector("[data-testid=perplexity]")?.textContent ?? ""), null, { timeout: WORK });
  const losses = JSON.parse(await page.getByTestId("loss-curve").getAttribute("data-losses"));
  assert.equal(losses.length, 1);
  assert.ok(losses.every(Number.isFinite), `${losses}`);
  // Weights that stop 100 bytes short (the server's Content-Length agrees with them): the file is refused as it
  // streams in, naming the tensor, and the loaded model stays.
  const loaded = await modelText(page);
  await page.getByTestId("hub-repo").fill("hnet-test/cut-llama");
  await page.getByTestId("hub-load").click();
  await page.waitForFunction(() => /cut-llama/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""), null, { timeout: WORK });
  assert.match(await page.getByTestId("error").textContent(), /not a valid safetensors file \(model\.safetensors\): its header accounts for \d+ bytes, the file has \d+.*previous model is still loaded/);
  assert.equal(await modelText(page), loaded);
  // A model too large for the page's memory, downloaded anyway: refused before its weights are fetched.
  await page.getByTestId("hub-repo").fill("hnet-test/huge");
  await page.getByTestId("hub-hybrid").uncheck();
  await page.getByTestId("hub-load").click();
  await page.getByTestId("hub-confirm-yes").click({ timeout: WORK });
  await page.waitForFunction(() => /huge/.test(document.querySelector("[data-testid=error]")?.textContent ?? ""), null, { timeout: WORK });
  assert.match(await page.getByTestId("error").textContent(), /1\.56B parameters: their f32 weights and the room to convert them \(7\.8 GB\) do not fit this page's 4 GB of memory/);
  assert.ok(!hub.requests.some((r) => r.startsWith("hnet-test/huge/") && !r.endsWith("config.json")), "files of the huge model were fetched");
  assert.equal(await modelText(page), loaded);
  assert.deepEqual(problems.filter((p) => !p.includes(hub.url)), []);
});
