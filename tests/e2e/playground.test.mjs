// The playground in a real browser (Debian chromium, WebGPU on SwiftShader), against the trunk-built dist/:
// WebGPU inference with streamed tokens, the chunk view (checked against the CLI), fine-tuning, saving and
// restoring, downloading a checkpoint the CLI reads, a corrupt model file, embed mode, the CPU fallback, and no
// main-thread task over 50 ms of CPU while generating or training: the model runs in a Web Worker. A screenshot
// is saved for each state.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { writeFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { serve, launch, open, screenshot, scratch, watchMainThread, assertMainThreadQuiet, ROOT } from "./harness.mjs";

// SwiftShader runs WebGPU at ~0.1–0.2 GFLOP/s and compiles shaders on first use: be patient.
const LOAD = 240_000;
const WORK = 300_000;
const CLI = process.env.HNET_GPT_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, ".cache/hnet-gpt/target"), "debug/hnet-gpt");
const MODEL = join(ROOT, "public/models/default.safetensors");

let server, browser;
before(async () => { server = await serve(); browser = await launch({ webgpu: true }); });
after(async () => { await browser?.close(); await server?.close(); });

async function ready(page) {
  await page.waitForFunction(() => /^Ready|Could not|No model/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD });
  const error = page.getByTestId("error");
  assert.equal(await error.count(), 0, await error.textContent().catch(() => ""));
}

/** The editor's text (CodeMirror's lines), without the ghost text of a completion. */
function editorText(page) {
  return page.evaluate(() => {
    const content = document.querySelector("[data-testid=editor]").cloneNode(true);
    content.querySelectorAll(".cm-ghost").forEach((g) => g.remove());
    return [...content.querySelectorAll(".cm-line")].map((l) => l.textContent).join("\n");
  });
}

/** Completes at the cursor; `scope` "free" (the default here) runs to max tokens, so that streaming and Stop have
 * tokens to see whatever the model writes. */
async function complete(page, scope = "free") {
  if (await page.locator("#scope").count()) await page.locator("#scope").selectOption(scope);
  await page.getByTestId("complete").click();
  await page.waitForFunction(() => {
    const n = parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10);
    return n >= 5 && !document.querySelector("[data-testid=complete]")?.disabled;
  }, null, { timeout: WORK });
  return parseInt(await page.getByTestId("token-count").textContent(), 10);
}

test("WebGPU: streams a completion, draws chunks like the CLI, fine-tunes, saves, downloads, survives a bad file", { timeout: 20 * 60_000 }, async (t) => {
  // `?gpu=1`: WebGPU even on a software adapter, which the automatic choice would race against the CPU.
  const { page, problems } = await open(browser, `${server.url}?gpu=1`);
  await ready(page);
  await screenshot(page, "01-ready");
  // The WebGPU path must really run: the CPU fallback does not pass this test.
  assert.equal(await page.getByTestId("backend").textContent(), "Backend: WebGPU");
  assert.match(await page.getByTestId("adapter").textContent(), /Adapter: .+/);
  assert.equal(await page.getByTestId("software-adapter").count(), 1, "SwiftShader is a fallback adapter and gets the badge");
  assert.equal(await page.getByTestId("worker").textContent(), "Worker: idle");
  // What the CLI says about the snippet the chunk view will show — asked now, so that no CLI process competes with
  // the browser for these 2 cores while main-thread tasks are measured.
  const snippet = "def area(width, height):\n    \"\"\"Area of a rectangle.\"\"\"\n    if width < 0 or height < 0:\n        raise ValueError(\"negative\")\n    return width * height\n";
  const snippetTokens = JSON.parse(execFileSync(CLI, ["tokenize", "--ids", "--checkpoint", MODEL, "-"], { input: snippet })).length;
  const dir = scratch(t, "hnet-e2e-");
  writeFileSync(join(dir, "snippet.py"), snippet);
  const cli = JSON.parse(execFileSync(CLI, ["chunks", "--checkpoint", MODEL, "--json", join(dir, "snippet.py")]));
  const watch = await watchMainThread(browser, page);

  // Completion, streamed.
  await page.evaluate(() => {
    window.__lengths = [];
    const el = document.querySelector("[data-testid=completion]");
    new MutationObserver(() => window.__lengths.push(el.textContent.length)).observe(el, { childList: true, characterData: true, subtree: true });
  });
  assert.ok((await watch.measure(() => complete(page))) >= 5);
  const lengths = await page.evaluate(() => window.__lengths);
  assert.ok(new Set(lengths).size >= 3, `the completion did not stream: ${JSON.stringify(lengths)}`);
  // The completion is ghost text at the cursor in the editor; Tab accepts it into the code.
  const ghost = await page.locator(".cm-ghost").textContent();
  assert.ok(ghost.length > 0, "no ghost text in the editor");
  await screenshot(page, "02-completion");
  const before = await editorText(page);
  await page.getByTestId("editor").focus();
  await page.keyboard.press("Tab");
  await page.waitForFunction(() => !document.querySelector(".cm-ghost"), null, { timeout: 10_000 });
  assert.equal(await editorText(page), before + ghost, "Tab did not put the completion into the code at the cursor");

  // Chunk view for a pasted snippet, compared with `hnet-gpt chunks --json` on the same model and text.
  await page.getByTestId("editor").fill(snippet);
  await watch.measure(() => page.waitForFunction((n) => {
    const s = document.querySelector("[data-testid=chunk-summary]");
    return s && document.querySelectorAll("[data-testid=token]").length === n;
  }, snippetTokens, { timeout: WORK }));
  const spans = await page.getByTestId("chunk").count();
  assert.equal(spans, cli.n_chunks, "the page and the CLI disagree on the number of chunks");
  assert.equal(Number(await page.getByTestId("chunk-summary").getAttribute("data-chunks")), cli.n_chunks);
  // Chunk edges: every chunk begins with a firm mark (as opaque as its p, above 0.5), and no mark takes room, so the
  // code keeps its columns and no character is covered.
  const edges = await page.evaluate(() => [...document.querySelectorAll("[data-testid=chunk]")].slice(1).map((chunk) => {
    const first = chunk.querySelector("[data-testid=token]");
    const edge = first.querySelector(".edge");
    const style = edge && getComputedStyle(edge);
    return { p: Number(first.dataset.p), opacity: edge ? Number(style.opacity) : 0,
             room: edge ? parseFloat(style.width) + parseFloat(style.marginLeft) + parseFloat(style.marginRight) : 0 };
  }));
  assert.ok(edges.length >= 3);
  for (const e of edges) {
    assert.ok(e.p > 0.5 && Math.abs(e.opacity - Math.min(e.p, 1)) < 0.01, `a chunk edge: ${JSON.stringify(e)}`);
    assert.equal(e.room, 0, "an edge mark takes room");
  }
  await page.getByTestId("token").nth(3).focus();
  assert.match(await page.getByTestId("token-detail").textContent(), /token 3: .* id \d+ · p = \d\.\d{3}/);
  // The view is one tab stop (the token last focused); arrow keys, Home and End move between tokens.
  const tabStops = () => page.evaluate(() => [...document.querySelectorAll("[data-testid=token]")].filter((t) => t.tabIndex === 0).map((t) => t.dataset.k));
  assert.deepEqual(await tabStops(), ["3"]);
  await page.keyboard.press("ArrowRight");
  assert.match(await page.getByTestId("token-detail").textContent(), /^token 4: /);
  await page.keyboard.press("Home");
  assert.match(await page.getByTestId("token-detail").textContent(), /^token 0: /);
  assert.deepEqual(await tabStops(), ["0"]);
  await page.keyboard.press("Shift+Tab");
  assert.notEqual(await page.evaluate(() => document.activeElement?.dataset?.testid), "token", "Shift+Tab stayed among the tokens");
  await page.getByTestId("toggle-statements").check();
  await page.getByTestId("toggle-surprisal").check();
  await page.waitForFunction(() => document.querySelectorAll(".tok.stmt").length >= 3, null, { timeout: WORK });
  assert.match(await page.getByTestId("chunk-legend").textContent(), /boundary probability p, as dark as p .*Orange behind a token: its surprisal/);
  await screenshot(page, "03-chunks");

  // Fine-tuning: 3 steps lower the loss.
  const code = readFileSync(join(ROOT, "model/data/builtin_corpus.py"), "utf8").split("\n\n\n").slice(1, 9).join("\n# ---\n");
  await page.getByTestId("snippets").fill(code);
  await page.getByTestId("ft-steps").fill("3");
  await page.getByTestId("ft-steps").dispatchEvent("change");
  await watch.measure(async () => {
    await page.getByTestId("train").click();
    await page.waitForFunction(() => /before → .* after/.test(document.querySelector("[data-testid=perplexity]")?.textContent ?? ""), null, { timeout: WORK });
  });
  const losses = JSON.parse(await page.getByTestId("loss-curve").getAttribute("data-losses"));
  assert.equal(losses.length, 3);
  assert.ok(losses[2] < losses[0], `fine-tuning did not lower the loss: ${losses}`);
  // The plot has axes: the step from 1 to the steps planned, the loss from the lowest to the highest seen.
  assert.deepEqual(await page.getByTestId("step-axis").locator("text").allTextContents(), ["1", "3", "step"]);
  const [hi, lo] = (await page.getByTestId("loss-axis").locator("text").allTextContents()).slice(0, 2).map(Number);
  assert.ok(Math.abs(hi - Math.max(...losses)) < 0.01 && Math.abs(lo - Math.min(...losses)) < 0.01, `axis ${hi}..${lo}, losses ${losses}`);
  // Speed and memory are measured per step and shown: at least the model's f32 weights are held on the device.
  const stepText = await page.getByTestId("train-progress").textContent();
  const held = stepText.match(/GPU memory ([\d.]+) (MB|kB)/);
  assert.ok(held && /[\d.]+ s\/step/.test(stepText), `no step time or GPU memory in "${stepText}"`);
  const params = JSON.parse(execFileSync(CLI, ["info", "--checkpoint", MODEL, "--json"])).parameters;
  assert.ok(Number(held[1]) * (held[2] === "MB" ? 1e6 : 1e3) >= 4 * params, `GPU memory ${held[0]} is less than the ${params} f32 weights`);
  // The status bar's memory pill shows the figure of the last step, not the one after loading.
  assert.equal(await page.getByTestId("memory").textContent(), `GPU memory: ${held[1]} ${held[2]}`);
  await screenshot(page, "04-finetuned");
  await assertMainThreadQuiet(watch, "while generating, chunking or training");

  // Download a checkpoint the CLI reads.
  const [download] = await Promise.all([page.waitForEvent("download"), page.getByTestId("download").click()]);
  const file = join(dir, "downloaded.safetensors");
  await download.saveAs(file);
  const info = JSON.parse(execFileSync(CLI, ["info", "--checkpoint", file, "--json"]));
  assert.equal(info.arch, JSON.parse(execFileSync(CLI, ["info", "--checkpoint", MODEL, "--json"])).arch);

  // Save, reload: restored.
  await page.getByTestId("save").click();
  await page.waitForFunction(() => /saved in this browser/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: 60_000 });
  await page.reload();
  await ready(page);
  assert.match(await page.getByTestId("model").textContent(), /restored from this browser/);
  await screenshot(page, "05-restored");

  // A corrupt model file: a clear error, and the loaded model keeps working.
  await page.getByTestId("model-file").setInputFiles({ name: "broken.safetensors", mimeType: "application/octet-stream", buffer: Buffer.from("this is not a checkpoint") });
  await page.getByTestId("error").waitFor({ timeout: 60_000 });
  assert.match(await page.getByTestId("error").textContent(), /Could not load .*broken\.safetensors.*previous model is still loaded/);
  assert.equal(await page.getByTestId("error").getAttribute("data-place"), "Models", "the error is not beside the model panel");
  await screenshot(page, "06-bad-file");
  assert.ok((await complete(page)) >= 5);

  // Reset to the bundled model.
  await page.getByTestId("reset").click();
  await page.waitForFunction(() => /bundled model/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  assert.deepEqual(problems, []);
});

test("embed mode renders a compact chunk widget, and the example docs page embeds it", { timeout: LOAD + WORK }, async () => {
  const code = encodeURIComponent("def add(a, b):\n    return a + b\n");
  const { page } = await open(browser, `${server.url}?embed=1&mode=chunks&code=${code}`, { viewport: { width: 390, height: 700 } });
  await page.getByTestId("embed").waitFor();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=chunk]").length > 0, null, { timeout: LOAD + WORK });
  await screenshot(page, "07-embed-chunks");
  const docs = await browser.newPage({ viewport: { width: 900, height: 1000 } });
  await docs.goto(`${server.url}public/embed-example.html`);
  // Each widget fits its iframe once its model is ready (nothing clipped, the Complete button in view), and shows
  // one status line, not the playground's diagnostics.
  for (const id of ["embed-chunks", "embed-complete"]) {
    const handle = await docs.locator(`[data-testid=${id}]`).elementHandle();
    await handle.scrollIntoViewIfNeeded();
    const frame = await handle.contentFrame();
    await frame.waitForSelector("[data-testid=embed]", { timeout: LOAD });
    await frame.waitForFunction(() => /^Ready/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD });
    if (id === "embed-chunks") await frame.waitForFunction(() => document.querySelectorAll("[data-testid=chunk]").length > 0, null, { timeout: WORK });
    else await frame.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled, null, { timeout: WORK });
    const fit = await frame.evaluate(() => ({ content: document.documentElement.scrollHeight, frame: window.innerHeight,
      button: document.querySelector("[data-testid=complete]")?.getBoundingClientRect().bottom ?? 0 }));
    assert.ok(fit.content <= fit.frame && fit.button <= fit.frame, `${id}: ${JSON.stringify(fit)}`);
    for (const pill of ["worker", "backend", "memory", "adapter", "backend-switch"]) assert.equal(await frame.locator(`[data-testid=${pill}]`).count(), 0, `${id}: ${pill}`);
  }
  await screenshot(docs, "08-embed-docs");
});

test("the page works at a 390 px phone width, in light and dark", { timeout: 3 * LOAD }, async () => {
  for (const [colorScheme, viewport, name] of [
    ["light", { width: 390, height: 844 }, "09-phone"],
    ["dark", { width: 390, height: 844 }, "09-phone-dark"],
    ["dark", { width: 1280, height: 900 }, "01-ready-dark"],
  ]) {
    const { page } = await open(browser, server.url, { viewport, colorScheme });
    await ready(page);
    await page.locator(".cm-editor").waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `the page scrolls sideways by ${overflow} px at ${viewport.width} px (${colorScheme})`);
    // The colour scheme really follows the system: a dark page with light code text in dark mode, and the reverse.
    const [page_bg, code_fg] = await page.evaluate(() => [["body", "backgroundColor"], [".cm-content", "color"]].map(([sel, prop]) => {
      const [r, g, b] = getComputedStyle(document.querySelector(sel))[prop].match(/\d+/g).map(Number);
      return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255;
    }));
    const dark = colorScheme === "dark";
    assert.ok(dark ? page_bg < 0.3 && code_fg > 0.5 : page_bg > 0.7 && code_fg < 0.5, `${colorScheme}: page ${page_bg}, code text ${code_fg}`);
    await screenshot(page, name);
    await page.close();
  }
});

test("the architecture selector switches between bundled models", { timeout: LOAD + WORK }, async (t) => {
  // The bundle's second model, its gpt2 (one per architecture); a bundle of the hybrid alone gets a fresh `gpt2` from
  // the CLI in its manifest instead.
  const manifest = JSON.parse(readFileSync(join(ROOT, "public/models/models.json"), "utf8"));
  const routes = { "**/public/models/models.json": (route) => route.fulfill({ json: manifest }) };
  let second = manifest.models.find((m) => m.arch === "gpt2");
  if (!second) {
    const gpt2 = join(scratch(t, "hnet-e2e-"), "gpt2.safetensors");
    execFileSync(CLI, ["init", "--arch", "gpt2", "--preset", "tiny", "--seed", "0", "--out", gpt2]);
    second = { arch: "gpt2", label: "gpt2 · tiny · random", url: "public/models/gpt2-test.safetensors" };
    manifest.models.push(second);
    routes["**/public/models/gpt2-test.safetensors"] = (route) => route.fulfill({ body: readFileSync(gpt2), contentType: "application/octet-stream" });
  }
  const { page, problems } = await open(browser, `${server.url}?gpu=1`, { routes });
  await ready(page);
  const select = page.getByTestId("arch-select");
  await select.waitFor();
  assert.match(await page.getByTestId("model").textContent(), /hybrid/);
  await select.selectOption({ label: second.label });
  await page.waitForFunction(() => /gpt2 .*bundled gpt2 model/.test(document.querySelector("[data-testid=model]")?.textContent ?? ""), null, { timeout: LOAD });
  // Its card says what it is, from the manifest.
  if (second.about) assert.equal(await page.getByTestId("model-about").textContent(), second.about);
  assert.equal(await page.getByTestId("backend").textContent(), "Backend: WebGPU");
  // SwiftShader has no shader-f16: the weights stay in f32, and the status bar says why.
  assert.equal(await page.getByTestId("weights").textContent(), "Weights: f32 (this adapter has no shader-f16)");
  // GPT-2 has no chunks: the chunk view says so instead of keeping the hybrid's.
  await page.waitForFunction(() => /gpt2 model: it has no learned chunks/.test(document.querySelector("[data-testid=chunk-note]")?.textContent ?? ""), null, { timeout: WORK });
  assert.equal(await page.getByTestId("chunk").count(), 0);
  await screenshot(page, "11-arch-selector");
  assert.deepEqual(problems, []);
});

test("on a software adapter the faster of WebGPU and the CPU runs the model, and the switch moves it", { timeout: 2 * LOAD + WORK }, async () => {
  const { page, problems } = await open(browser, server.url);
  await ready(page);
  assert.equal(await page.getByTestId("software-adapter").count(), 1);
  // Both were measured at warm-up; the faster runs the model, and the page says so with both speeds.
  const speed = async (id) => {
    const text = await page.getByTestId(id).textContent();
    const m = text.match(/ · ([\d.]+) tokens\/s$/);
    assert.ok(m, `${id}: "${text}"`);
    return Number(m[1]);
  };
  const [gpu, cpu] = [await speed("switch-webgpu"), await speed("switch-cpu")];
  const faster = gpu >= cpu ? "WebGPU" : "CPU";
  assert.equal(await page.getByTestId("backend").textContent(), `Backend: ${faster}`);
  const reason = await page.getByTestId("backend-reason").textContent();
  assert.match(reason, /the software WebGPU adapter decoded [\d.]+ tokens\/s and the CPU [\d.]+ tokens\/s, so (WebGPU|the CPU) runs the model/);
  assert.equal(await page.locator(`[data-testid=switch-${faster.toLowerCase()}]`).getAttribute("aria-checked"), "true");
  await screenshot(page, "13-backend-race");
  // The switch moves the model to the other backend and back; completions run on each.
  for (const [to, label] of [[faster === "CPU" ? "webgpu" : "cpu", faster === "CPU" ? "WebGPU" : "CPU"], [faster.toLowerCase(), faster]]) {
    await page.getByTestId(`switch-${to}`).click();
    await page.waitForFunction((label) => document.querySelector("[data-testid=backend]")?.textContent === `Backend: ${label}`
      && /^Ready/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), label, { timeout: LOAD });
    assert.equal(await page.getByTestId(`switch-${to}`).getAttribute("aria-checked"), "true");
    assert.match(await page.getByTestId("model").textContent(), /bundled model/);
    assert.ok((await complete(page)) >= 5);
  }
  assert.match(await page.getByTestId("switch-webgpu").textContent(), /tokens\/s/);
  assert.deepEqual(problems, []);
});

test("completes after a pause in typing, and a keystroke stops the completion in flight", { timeout: LOAD + WORK }, async () => {
  // WebGPU on SwiftShader (`?gpu=1`) decodes a few tokens a second: a completion stays in flight long enough to type
  // into it (64 tokens would take many seconds).
  const { page, problems } = await open(browser, `${server.url}?gpu=1`);
  await ready(page);
  const auto = page.getByTestId("auto-complete");
  assert.equal(await auto.isChecked(), false, "automatic completion is off by default on a software adapter");
  await page.locator("#max-tokens").fill("64");
  await page.locator("#max-tokens").dispatchEvent("change");
  await page.locator("#scope").selectOption("free");
  await auto.check();
  await page.getByTestId("editor").focus();
  await page.keyboard.press("Control+End");
  // Typing alone starts a completion, after the pause (Stop is enabled while one is in flight).
  await page.keyboard.type("x");
  await page.waitForFunction(() => parseInt(document.querySelector("[data-testid=token-count]").textContent, 10) >= 1
    && !document.querySelector("[data-testid=stop]").disabled, null, { timeout: WORK });
  // A keystroke stops it at once: the next completion (after the pause) starts within seconds, not after the 64
  // tokens the first would still take.
  const typed = Date.now();
  await page.keyboard.type("y");
  await page.waitForFunction(() => document.querySelector("[data-testid=token-count]")?.textContent === "0 tokens", null, { timeout: 20_000 });
  const restarted = Date.now() - typed;
  assert.ok(restarted < 6_000, `the completion in flight went on for ${restarted} ms after a keystroke`);
  await page.waitForFunction(() => parseInt(document.querySelector("[data-testid=token-count]").textContent, 10) >= 1, null, { timeout: WORK });
  assert.match(await editorText(page), /xy$/);
  await auto.uncheck();
  assert.deepEqual(problems, []);
});

test("falls back to the CPU when WebGPU is unavailable, and says why", { timeout: LOAD + WORK }, async () => {
  const cpu = await launch({ webgpu: false });
  try {
    const { page } = await open(cpu, server.url);
    await ready(page);
    assert.equal(await page.getByTestId("backend").textContent(), "Backend: CPU");
    assert.match(await page.getByTestId("memory").textContent(), /^Worker memory: [\d.]+ MB$/);
    assert.equal(await page.getByTestId("weights").count(), 0, "the CPU keeps its weights in f32: no GPU weights pill");
    assert.match(await page.getByTestId("backend-reason").textContent(), /^Running on the CPU: .*(WebGPU|adapter)/);
    // The switch offers only what works: WebGPU is disabled and says why.
    const webgpu = page.getByTestId("switch-webgpu");
    assert.ok(await webgpu.isDisabled());
    assert.match(await webgpu.getAttribute("title"), /WebGPU|adapter/);
    assert.match(await page.getByTestId("switch-cpu").textContent(), /^CPU · [\d.]+ tokens\/s$/);
    const watch = await watchMainThread(cpu, page);
    assert.ok((await watch.measure(() => complete(page))) >= 5);
    await assertMainThreadQuiet(watch, "while generating on the CPU");
    // The watch sees what it must: a task that spins the page's thread is measured as such. It starts after a
    // pause: the renderer begins recording a moment after startTracing returns, and a busy machine once ran the loop
    // before that (the trace held 2 tasks, neither of them the loop). The loop spins 150 ms of wall clock for at
    // least 60 ms of CPU: on a machine shared with other work, an 80 ms loop once got only 57 ms of CPU.
    const probe = await watchMainThread(cpu, page);
    await probe.measure(() => page.evaluate(() => new Promise((done) => setTimeout(() => {
      const t = performance.now();
      while (performance.now() - t < 150);
      done();
    }, 500))));
    await assert.rejects(assertMainThreadQuiet(probe, "in a 150 ms busy loop"), /a main-thread task used (\d+)/);
    const spun = probe.worst().cpu;
    assert.ok(spun >= 60, `the busy loop measured ${spun} ms of CPU`);
    // Esc rejects the ghost text: the code stays as it was.
    const before = await editorText(page);
    await page.getByTestId("editor").focus();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.querySelector(".cm-ghost"), null, { timeout: 10_000 });
    assert.equal(await editorText(page), before);
    // Stop cancels the worker's job at its next token.
    await page.locator("#max-tokens").fill("512");
    await page.locator("#max-tokens").dispatchEvent("change");
    await page.locator("#scope").selectOption("free");
    await page.getByTestId("complete").click();
    await page.waitForFunction(() => parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10) >= 2, null, { timeout: WORK });
    await page.getByTestId("stop").click();
    await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled, null, { timeout: WORK });
    const stopped = parseInt(await page.getByTestId("token-count").textContent(), 10);
    assert.ok(stopped < 512, `Stop did not stop the completion (${stopped} tokens)`);
    // Esc in the editor while a completion streams: the ghost goes and the completion stops with it.
    await page.getByTestId("complete").click();
    await page.waitForFunction(() => parseInt(document.querySelector("[data-testid=token-count]")?.textContent ?? "0", 10) >= 2 && document.querySelector(".cm-ghost"), null, { timeout: WORK });
    await page.getByTestId("editor").focus();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.querySelector("[data-testid=complete]")?.disabled, null, { timeout: WORK });
    const escaped = parseInt(await page.getByTestId("token-count").textContent(), 10);
    assert.ok(escaped < 512, `Esc did not stop the completion (${escaped} tokens)`);
    assert.equal(await page.locator(".cm-ghost").count(), 0, "a ghost came back after Esc");
    await page.waitForFunction(() => document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
    // A completion does not wait for the chunking of a long file: chunking yields to it between windows.
    const long = Array.from({ length: 300 }, (_, i) => `def add_${i}(x):\n    """Return x plus ${i}."""\n    return x + ${i}\n`).join("\n")
      + "\ndef add_300(x):\n    return x +";
    await page.getByTestId("editor").fill(long);
    await page.waitForFunction(() => /Chunking: window \d+ of \d+/.test(document.querySelector("[data-testid=chunk-progress]")?.textContent ?? ""), null, { timeout: WORK });
    await page.getByTestId("complete").click();
    // The completion shows text, or ends (a model may end the file there): either way before the chunking is done.
    await page.waitForFunction(() => document.querySelector(".cm-ghost") || document.querySelector("[data-testid=completion-note]")?.textContent,
      null, { timeout: WORK });
    const chunking = await page.evaluate(() => document.querySelector("[data-testid=chunk-progress]")?.textContent ?? "done");
    assert.match(chunking, /Chunking: window \d+ of \d+/, "the completion waited for the chunking to finish");
    await page.getByTestId("editor").focus();
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => document.querySelector("[data-testid=worker]")?.textContent === "Worker: idle", null, { timeout: WORK });
    await screenshot(page, "10-cpu-fallback");
  } finally {
    await cpu.close();
  }
});
