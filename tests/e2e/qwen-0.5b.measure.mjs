// What a 0.5B code model costs in the page, measured (not a test: scripts/browser-qwen-0.5b.sh runs it). A
// repository of Qwen2.5-Coder-0.5B's exact shapes and vocabulary size (random bf16 weights, GPT-2's tokenizer) is
// served by the tests' local Hub; for each backend the page loads `?model=hf:…` (the weights converted tensor by
// tensor as they download), then:
// - the time to Ready (download from the local Hub, conversion, warm-up) and the worker's wasm heap (it only grows,
//   so the figure after loading is the peak) or the GPU memory, as the page shows them;
// - a completion after a short prompt of SHORT tokens: the first token's latency (the prompt's prefill) and the
//   decoding speed after it;
// - a reload: served from the Cache API (the local Hub's request log says whether the weights were fetched again);
// - last, a completion after a prompt of about PROMPT tokens, measured as the short one (a software adapter may
//   take longer than LIMIT_S over it: the rows before it stand).
// Writes OUT/qwen-0.5b.json and OUT/qwen-0.5b.md. Env: REPO_DIR, BACKENDS (cpu,webgpu), SHORT (32), PROMPT (1000),
// TOKENS (8), LIMIT_S (900 per phase: a phase past it is reported as not finished, with what was measured before
// it), OUT.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { serve, serveHub, launch, open, ROOT } from "./harness.mjs";

const REPO_DIR = process.env.REPO_DIR;
const OUT = process.env.OUT ?? join(ROOT, "docs/results/browser");
const TOKENS = Number(process.env.TOKENS ?? 8);
const PROMPT = Number(process.env.PROMPT ?? 1000);
const SHORT = Number(process.env.SHORT ?? 32);
const BACKENDS = (process.env.BACKENDS ?? "cpu,webgpu").split(",");
const LIMIT = Number(process.env.LIMIT_S ?? 900) * 1000;
if (!REPO_DIR) throw new Error("REPO_DIR is not set (see scripts/browser-qwen-0.5b.sh)");

const REPO = "local/qwen-coder-0.5b";
const files = {};
for (const f of ["config.json", "model.safetensors"]) files[`${REPO}/${f}`] = readFileSync(join(REPO_DIR, f));
files[`${REPO}/tokenizer.json`] = readFileSync(join(ROOT, "public/tokenizer.json"));
const config = JSON.parse(files[`${REPO}/config.json`]);
const hub = await serveHub(files);
const server = await serve();
const seconds = (t0) => (performance.now() - t0) / 1000;
const params = (() => {
  const header = files[`${REPO}/model.safetensors`];
  const n = Number(header.readBigUInt64LE(0));
  const meta = JSON.parse(header.subarray(8, 8 + n).toString());
  return Object.entries(meta).filter(([k]) => k !== "__metadata__").reduce((a, [, t]) => a + t.shape.reduce((x, y) => x * y, 1), 0);
})();
const result = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, chromium: execFileSync(process.env.CHROMIUM ?? "chromium", ["--version"]).toString().trim() },
  model: { shape: "Qwen2.5-Coder-0.5B", params, f32_bytes: 4 * params, file_bytes: files[`${REPO}/model.safetensors`].length, vocab: config.vocab_size },
  prompt_tokens: null,
  short_prompt_tokens: null,
  browser: {},
};

// PROMPT tokens of real Python, cut where the CLI's tokenizer (GPT-2's, the model's here) ends token PROMPT.
const CLI = process.env.HNET_GPT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/hnet-gpt/target"), "debug/hnet-gpt");
const source = readFileSync(join(ROOT, "scripts/fixtures/hub_fixtures.py"), "utf8") + readFileSync(join(ROOT, "scripts/fixtures/gen_families.py"), "utf8");
const spans = JSON.parse(execFileSync(CLI, ["tokenize", "-"], { input: source, maxBuffer: 1 << 26 }).toString()).spans;
if (spans.length < PROMPT) throw new Error(`the source has only ${spans.length} tokens`);
const cut = (n) => Buffer.from(source).subarray(0, spans[n - 1][1]).toString();
const count = (text) => JSON.parse(execFileSync(CLI, ["tokenize", "--ids", "-"], { input: text }).toString()).length;
const [prompt, short] = [cut(PROMPT), cut(SHORT)];
[result.prompt_tokens, result.short_prompt_tokens] = [count(prompt), count(short)];
const text = (page, id) => page.getByTestId(id).textContent();
const ready = (page) =>
  page.waitForFunction(() => /^Ready|Could not|No model/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LIMIT });
// A completion of `code`: the first token's latency and the decoding speed after it.
async function complete(page, code) {
  await page.locator("#max-tokens").fill(String(TOKENS));
  await page.locator("#max-tokens").dispatchEvent("change");
  await page.getByTestId("editor").fill(code);
  const t0 = performance.now();
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10) >= 1, null, { timeout: LIMIT, polling: 50 });
  const first_token_s = seconds(t0);
  const t1 = performance.now();
  await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled, null, { timeout: LIMIT });
  const tokens = parseInt(await text(page, "token-count"), 10);
  return { first_token_s, tokens, decode_tokens_per_s: tokens > 1 ? (tokens - 1) / seconds(t1) : null };
}
const weightRequests = () => hub.requests.filter((r) => r.endsWith("model.safetensors")).length;

for (const backend of BACKENDS) {
  // A profile on disk, as a person's: the Cache API keeps large files there (a throwaway context keeps them in
  // memory, where Chromium refused the 988 MB entry with "Unexpected internal error").
  const profile = mkdtempSync(join(tmpdir(), "qwen-profile-"));
  const browser = await launch({ webgpu: backend === "webgpu", profile });
  const row = {};
  let page;
  try {
    const url = `${server.url}?model=hf:${REPO}&hub=${encodeURIComponent(hub.url)}${backend === "cpu" ? "&gpu=0" : "&gpu=1"}`;
    let t0 = performance.now();
    ({ page } = await open(browser, url));
    await ready(page);
    row.load_s = seconds(t0);
    if (await page.getByTestId("error").count()) throw new Error(await text(page, "error"));
    row.status = await text(page, "status");
    row.backend = await text(page, "backend");
    row.backend_reason = (await page.getByTestId("backend-reason").count()) ? await text(page, "backend-reason") : null;
    row.memory_after_load = await text(page, "memory");
    // On WebGPU, how the weights are kept (f16 where the adapter has shader-f16: the GPU memory above is theirs).
    row.weights = (await page.getByTestId("weights").count()) ? await text(page, "weights") : null;
    // A completion after the short prompt: the first token waits for the prompt's prefill.
    row.short = await complete(page, short);
    row.memory_after_completion = await text(page, "memory");
    // The reload: the weights come from the Cache API, not the Hub.
    const before = weightRequests();
    t0 = performance.now();
    await page.reload();
    await ready(page);
    row.reload_s = seconds(t0);
    row.reload_fetched_weights = weightRequests() > before;
    row.memory_after_reload = await text(page, "memory");
    // The long prompt last: a software adapter may not finish its prefill within LIMIT_S, and what came before is kept.
    Object.assign(row, await complete(page, prompt));
    row.memory_after_long = await text(page, "memory");
  } catch (e) {
    row.error = String(e.message ?? e).split("\n")[0];
    row.status_at_error = await page?.getByTestId("status").textContent().catch(() => undefined);
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
  result.browser[backend] = row;
  console.log(backend, JSON.stringify(row));
}
await server.close();
await hub.close();

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "qwen-0.5b.json"), JSON.stringify(result, null, 2) + "\n");
const r = result;
const mb = (b) => `${(b / 1e6).toFixed(0)} MB`;
const md = [
  "# A 0.5B code model in the page",
  "",
  `Made by \`${["BACKENDS", "SHORT", "PROMPT", "TOKENS", "LIMIT_S"].filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]} `).join("")}scripts/browser-qwen-0.5b.sh\`: a repository of Qwen2.5-Coder-0.5B's exact shapes and vocabulary size`,
  "(random bf16 weights; its tokenizer is GPT-2's, as Qwen's cannot be downloaded on the machine that measured)",
  "served by the tests' local Hub, loaded with `?model=hf:…` (converted tensor by tensor as it downloads).",
  "",
  `Machine: ${r.machine.cpus} × ${r.machine.cpu}; ${r.machine.chromium}, headless. Model: ${(r.model.params / 1e6).toFixed(1)}M parameters,`,
  `${mb(r.model.file_bytes)} file (bf16), ${mb(r.model.f32_bytes)} in f32; the bound on the CPU path's wasm heap (f32 + 25%) is ${mb(r.model.f32_bytes * 1.25)}.`,
  "",
  "| page | " + BACKENDS.join(" | ") + " |",
  "|---|" + BACKENDS.map(() => "---|").join(""),
  ...[
    ["backend", (b) => b.backend && (b.backend_reason ? `${b.backend} (${b.backend_reason})` : b.backend)],
    ["load (download from the local Hub, convert in wasm, warm up)", (b) => b.load_s && `${b.load_s.toFixed(1)} s`],
    ["memory after loading (as the page shows it; wasm memory only grows: the peak)", (b) => b.memory_after_load],
    ["weights on the GPU (f16 where the adapter has shader-f16)", (b) => b.weights],
    [`first token after a ${r.short_prompt_tokens ?? SHORT}-token prompt`, (b) => b.short && `${b.short.first_token_s.toFixed(1)} s`],
    ["decoding after it", (b) => b.short?.decode_tokens_per_s && `${b.short.decode_tokens_per_s.toFixed(2)} tokens/s (${b.short.tokens} tokens)`],
    ["memory after the completion", (b) => b.memory_after_completion],
    ["reload (from the Cache API)", (b) => b.reload_s && `${b.reload_s.toFixed(1)} s, weights fetched again: ${b.reload_fetched_weights ? "yes" : "no"}`],
    ["memory after the reload", (b) => b.memory_after_reload],
    [`first token after a ${r.prompt_tokens ?? PROMPT}-token prompt`, (b) => b.first_token_s && `${b.first_token_s.toFixed(1)} s`],
    ["decoding after the first token", (b) => b.decode_tokens_per_s && `${b.decode_tokens_per_s.toFixed(2)} tokens/s (${b.tokens} tokens)`],
    ["memory after the long completion", (b) => b.memory_after_long],
    ["not finished", (b) => b.error && `${b.error} (status: ${b.status_at_error ?? "n/a"})`],
  ].map(([label, f]) => `| ${label} | ${BACKENDS.map((k) => f(r.browser[k] ?? {}) ?? "n/a").join(" | ")} |`),
  "",
].join("\n");
writeFileSync(join(OUT, "qwen-0.5b.md"), md);
console.log(md);
