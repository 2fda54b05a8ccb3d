// What GPT-2 small costs in this project, measured (not a test: scripts/browser-gpt2-small.sh runs it). A repository
// with GPT-2 small's exact shapes (random weights; the real `gpt2` where the Hub cannot be reached) is served by the
// tests' local Hub; then:
// - the CLI: `hnet-gpt pull` (download + conversion) and `init --arch hybrid --decoder-from` timed;
// - the page, in headless chromium on WebGPU (SwiftShader here) and on the CPU: `?model=hf:…&hybrid=1` (GPT-2 +
//   a fresh H-Net encoder, converted in wasm; `gpu=1` keeps a software adapter on WebGPU instead of racing it
//   against the CPU), the time to Ready and the memory the page reports, a short completion, and fine-tuning steps
//   with the default scope (encoder + fusion, GPT-2 frozen) with the step time and memory the fine-tune panel shows.
// Writes OUT/gpt2-small.json and OUT/gpt2-small.md.
import { execFileSync, execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtempSync, readFileSync, writeFileSync, mkdirSync, statSync } from "node:fs";
import { tmpdir, cpus } from "node:os";
import { join } from "node:path";
import { serve, serveHub, launch, open, ROOT } from "./harness.mjs";

const REPO_DIR = process.env.REPO_DIR;            // …/gpt2-small-random, written by gen_reference.py --gpt2-small
const OUT = process.env.OUT ?? join(ROOT, "docs/results/browser");
const CLI = process.env.HNET_GPT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/hnet-gpt/target"), "debug/hnet-gpt");
const STEPS = Number(process.env.STEPS ?? 2);
const TOKENS = Number(process.env.TOKENS ?? 4);
const BACKENDS = (process.env.BACKENDS ?? "cpu,webgpu").split(",");
const LIMIT = Number(process.env.LIMIT_S ?? 2400) * 1000;   // per phase (SwiftShader runs GPT-2 small at minutes per step)
if (!REPO_DIR) throw new Error("REPO_DIR is not set (see scripts/browser-gpt2-small.sh)");

const REPO = "local/gpt2-small";
const files = {};
for (const f of ["config.json", "model.safetensors"]) files[`${REPO}/${f}`] = readFileSync(join(REPO_DIR, f));
files[`${REPO}/tokenizer.json`] = readFileSync(join(ROOT, "public/tokenizer.json"));
const hub = await serveHub(files);
const server = await serve();
const work = mkdtempSync(join(tmpdir(), "gpt2-small-"));
const seconds = (t0) => (performance.now() - t0) / 1000;
const result = {
  machine: { cpus: cpus().length, cpu: cpus()[0]?.model, chromium: execFileSync(process.env.CHROMIUM ?? "chromium", ["--version"]).toString().trim() },
  model: { repo: "GPT-2 small shapes, random weights", bytes: files[`${REPO}/model.safetensors`].length },
  cli: {},
  browser: {},
};

// The CLI: pull (through hf-hub, from the local Hub) and the fresh hybrid around it.
{
  const env = { ...process.env, HF_ENDPOINT: hub.url, HF_HOME: join(work, "hf-home") };
  let t0 = performance.now();
  // Asynchronously: the local Hub answers from this process's event loop.
  await promisify(execFile)(CLI, ["pull", REPO, "--out", join(work, "gpt2.safetensors")], { env, maxBuffer: 1 << 26 });
  result.cli.pull_s = seconds(t0);
  t0 = performance.now();
  execFileSync(CLI, ["init", "--arch", "hybrid", "--decoder-from", join(work, "gpt2.safetensors"), "--out", join(work, "hybrid.safetensors")], { stdio: ["ignore", "ignore", "inherit"] });
  result.cli.init_hybrid_s = seconds(t0);
  result.cli.hybrid_params = JSON.parse(execFileSync(CLI, ["info", "--checkpoint", join(work, "hybrid.safetensors"), "--json"])).parameters;
  result.cli.hybrid_bytes = statSync(join(work, "hybrid.safetensors")).size;
}

const text = (page, id) => page.getByTestId(id).textContent();
const snippets = readFileSync(join(ROOT, "scripts/fixtures/hub_fixtures.py"), "utf8").split("\n").slice(0, 120).join("\n");

for (const backend of BACKENDS) {
  const browser = await launch({ webgpu: backend === "webgpu" });
  const row = {};
  let page;
  try {
    const url = `${server.url}?model=hf:${REPO}&hybrid=1&hub=${encodeURIComponent(hub.url)}${backend === "cpu" ? "&gpu=0" : "&gpu=1"}`;
    let t0 = performance.now();
    ({ page } = await open(browser, url));
    await page.waitForFunction(() => /^Ready|Could not|No model/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LIMIT });
    row.load_s = seconds(t0);
    if (await page.getByTestId("error").count()) throw new Error(await text(page, "error"));
    row.backend = await text(page, "backend");
    row.model = await text(page, "model");
    row.memory_after_load = await text(page, "memory");
    // A short completion: time per token.
    await page.locator("#max-tokens").fill(String(TOKENS));
    await page.locator("#max-tokens").dispatchEvent("change");
    t0 = performance.now();
    await page.getByTestId("complete").click();
    await page.waitForFunction((n) => parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10) >= n && !document.querySelector("[data-testid=complete]")?.disabled, TOKENS, { timeout: LIMIT });
    row.completion_s_per_token = seconds(t0) / TOKENS;
    // Fine-tuning with the default scope, batch 1.
    await page.getByTestId("snippets").fill(snippets);
    await page.getByTestId("ft-steps").fill(String(STEPS));
    await page.getByTestId("ft-steps").dispatchEvent("change");
    await page.locator("#ft-batch").fill("1");
    await page.locator("#ft-batch").dispatchEvent("change");
    t0 = performance.now();
    await page.getByTestId("train").click();
    await page.waitForFunction((n) => new RegExp(`^Step ${n}/`).test(document.querySelector("[data-testid=train-progress]")?.textContent ?? ""), STEPS, { timeout: LIMIT });
    row.finetune_progress = await text(page, "train-progress");
    row.finetune_wall_s = seconds(t0);
    await page.waitForFunction(() => !document.querySelector("[data-testid=cancel-train]") || document.querySelector("[data-testid=cancel-train]").disabled, null, { timeout: LIMIT });
    row.scope = await page.locator("#ft-scope option:checked").textContent();
  } catch (e) {
    row.error = String(e.message ?? e).split("\n")[0];
    // What the page showed when the phase ran out.
    row.status_at_error = await page?.getByTestId("status").textContent().catch(() => undefined);
    row.finetune_progress ??= (await page?.getByTestId("train-progress").textContent().catch(() => "")) || undefined;
  } finally {
    await browser.close();
  }
  result.browser[backend] = row;
  console.log(backend, JSON.stringify(row));
}
await server.close();
await hub.close();

mkdirSync(OUT, { recursive: true });
writeFileSync(join(OUT, "gpt2-small.json"), JSON.stringify(result, null, 2) + "\n");
const r = result;
const md = [
  "# GPT-2 small in the CLI and the page",
  "",
  "Made by `scripts/browser-gpt2-small.sh` (GPT-2 small's exact shapes with random weights, served by the tests'",
  "local Hub: the real `gpt2` could not be downloaded on the machine that measured; download time from",
  "huggingface.co depends on the network and is not measured here).",
  "",
  `Machine: ${r.machine.cpus} × ${r.machine.cpu}; ${r.machine.chromium}, headless. Model file: ${(r.model.bytes / 1e6).toFixed(0)} MB (f32).`,
  "",
  "| CLI | |",
  "|---|---|",
  `| \`hnet-gpt pull\` (local Hub: download + convert) | ${r.cli.pull_s.toFixed(1)} s |`,
  `| \`hnet-gpt init --arch hybrid --decoder-from\` | ${r.cli.init_hybrid_s.toFixed(1)} s (${(r.cli.hybrid_params / 1e6).toFixed(1)}M parameters, ${(r.cli.hybrid_bytes / 1e6).toFixed(0)} MB) |`,
  "",
  "| page | " + BACKENDS.join(" | ") + " |",
  "|---|" + BACKENDS.map(() => "---|").join(""),
  ...[
    ["backend", (b) => b.backend],
    ["model", (b) => b.model],
    ["load (download from the local Hub, convert in wasm, warm up)", (b) => b.load_s && `${b.load_s.toFixed(1)} s`],
    ["memory after loading (as the page shows it)", (b) => b.memory_after_load],
    [`completion, ${TOKENS} tokens`, (b) => b.completion_s_per_token && `${b.completion_s_per_token.toFixed(2)} s/token`],
    ["fine-tuning scope", (b) => b.scope],
    [`fine-tuning, ${STEPS} steps of 1 × 64 tokens (the panel's last line)`, (b) => b.finetune_progress],
    ["not finished", (b) => b.error && `${b.error} (status: ${b.status_at_error ?? "n/a"})`],
  ].map(([label, f]) => `| ${label} | ${BACKENDS.map((k) => f(r.browser[k] ?? {}) ?? "n/a").join(" | ")} |`),
  "",
].join("\n");
writeFileSync(join(OUT, "gpt2-small.md"), md);
console.log(md);
