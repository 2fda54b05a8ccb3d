// Shared fixtures of the browser suite: a static server for the trunk-built dist/ on 127.0.0.1, and Debian's
// chromium driven by playwright-core with SwiftShader's WebGPU (a software adapter, but the real WebGPU path).
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { extname, join, normalize, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const DIST = join(ROOT, "dist");
export const SCREENSHOTS = join(import.meta.dirname, "screenshots");

/** A fresh directory under the system's temporary folder, removed when test `t` ends, passed or failed (a CI
 *  machine runs the suite again and again; leftovers would fill its disk). */
export function scratch(t, prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm",
  ".css": "text/css", ".json": "application/json", ".svg": "image/svg+xml", ".safetensors": "application/octet-stream",
};

/** Serves `root` on 127.0.0.1 (a secure context, as WebGPU requires). Resolves to { url, close }. */
export async function serve(root = DIST) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    const file = join(root, path.endsWith("/") ? join(path, "index.html") : path);
    try {
      const body = await readFile(file);
      res.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream" });
      res.end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => new Promise((ok) => server.close(ok)) };
}

/**
 * A stand-in for the Hugging Face Hub on 127.0.0.1: `/{owner}/{repo}/resolve/{revision}/{file}` from the tiny
 * repositories in cli/tests/fixtures/hub (GPT-2's tokenizer.json for those without their own), with CORS as the Hub
 * sends it. `extra` maps "owner/repo/file" to bytes (more repositories for a test) or to a function
 * `(req, res, cors)` that answers itself (a hostile server); `requests` counts what was asked.
 */
export async function serveHub(extra = {}) {
  const fixtures = join(ROOT, "cli/tests/fixtures/hub");
  const requests = [];
  const server = createServer(async (req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const m = path.match(/^\/([^/]+)\/([^/]+)\/resolve\/([^/]+)\/([^/]+)$/);
    const cors = { "access-control-allow-origin": "*", "access-control-expose-headers": "content-length, etag, x-repo-commit" };
    if (req.method === "OPTIONS") return res.writeHead(204, { ...cors, "access-control-allow-headers": "*" }).end();
    if (!m) return res.writeHead(404, cors).end("not found");
    const [, owner, repo, , file] = m;
    requests.push(`${owner}/${repo}/${file}`);
    let body = extra[`${owner}/${repo}/${file}`];
    if (body === undefined && owner === "hnet-test") {
      body = await readFile(join(fixtures, repo, normalize(file))).catch(() => undefined);
      if (body === undefined && file === "tokenizer.json" && repo === "tiny-gpt2") body = await readFile(join(ROOT, "public/tokenizer.json"));
    }
    if (typeof body === "function") return body(req, res, cors);
    if (body === undefined) return res.writeHead(404, cors).end("Entry not found");
    // What the hf-hub client (the CLI's `pull`) needs besides the bytes: an ETag, the commit, byte ranges.
    const headers = { ...cors, "content-type": "application/octet-stream", etag: `"${owner}-${repo}-${file}-${body.length}"`,
      "x-repo-commit": "0123456789abcdef0123456789abcdef01234567", "accept-ranges": "bytes" };
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? "");
    if (range) {
      const start = Math.min(Number(range[1]), body.length);
      const end = range[2] === "" ? body.length : Math.min(Number(range[2]) + 1, body.length);
      res.writeHead(206, { ...headers, "content-length": end - start, "content-range": `bytes ${start}-${end - 1}/${body.length}` });
      return res.end(body.subarray(start, end));
    }
    res.writeHead(200, { ...headers, "content-length": body.length });
    res.end(body);
  });
  await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
  return { url: `http://127.0.0.1:${server.address().port}`, requests, close: () => new Promise((ok) => server.close(ok)) };
}

function chromiumPath() {
  return process.env.CHROMIUM ?? execFileSync("sh", ["-c", "command -v chromium"]).toString().trim();
}

/**
 * Launches headless chromium; `webgpu: false` starts it with WebGPU disabled (for the CPU fallback test). With
 * `profile` (a directory), a browser profile kept on disk there, as a person's is (its storage on disk, not in memory
 * as in the throwaway contexts the tests use): what `open` is given is then that profile's context.
 */
export async function launch({ webgpu = true, profile } = {}) {
  const args = [
    "--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader",
  ];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader");
  else args.push("--disable-features=WebGPU");
  if (profile) return chromium.launchPersistentContext(profile, { executablePath: chromiumPath(), headless: true, args, viewport: { width: 1280, height: 900 } });
  const browser = await chromium.launch({ executablePath: chromiumPath(), headless: true, args });
  return browser;
}

/** Opens the page, collecting console errors and uncaught exceptions for the test to check. */
export async function open(browser, url, { viewport = { width: 1280, height: 900 }, routes = {}, colorScheme = "light" } = {}) {
  const page = await browser.newPage({ viewport, colorScheme });
  // `routes`: URL glob → handler, installed before the page loads (to serve extra models in a test).
  for (const [glob, handler] of Object.entries(routes)) await page.route(glob, handler);
  const problems = [];
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("console", (m) => { if (m.type() === "error" && !/Failed to load resource/.test(m.text())) problems.push(`console: ${m.text()}`); });
  page.on("response", (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()} ${r.url()}`); });
  await page.goto(url);
  return { page, problems };
}

export async function screenshot(page, name) {
  await mkdir(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });
}

/**
 * Watches the page's main thread through Chrome's trace. `measure(fn)` runs `fn` as a traced segment (what the test
 * judges: a completion, chunking, fine-tuning, typing into a large file — not screenshots); `worst()` reads the
 * task of the page's main thread, over all segments, that used the most CPU time, with its wall time, the app's
 * last performance mark before it, and what ran in it.
 *
 * The measure is the thread's CPU time, not the wall time a `longtask` entry reports: on these 2 cores the worker
 * (which computes flat out), SwiftShader's threads and the test itself compete with the page, and a task that
 * needs 9 ms of CPU can take 130 ms of wall time waiting for a core. The CPU time is what the page's own code
 * costs — what "the model runs in a worker, the page's thread only draws" promises — and the scheduler cannot
 * inflate it.
 */
export async function watchMainThread(browser, page) {
  const cdp = await page.context().newCDPSession(page);
  const frame = (await cdp.send("Page.getFrameTree")).frameTree.frame.id;
  await cdp.detach();
  const segments = [];
  const measure = async (fn) => {
    // Given the page, the trace names its frame (and renderer process) in TracingStartedInBrowser.
    await browser.startTracing(page, {
      categories: ["devtools.timeline", "disabled-by-default-devtools.timeline", "disabled-by-default-devtools.timeline.stack", "blink.user_timing"],
    });
    try {
      return await fn();
    } finally {
      segments.push(costliestTask(JSON.parse(await browser.stopTracing()), frame));
    }
  };
  const worst = () => {
    const tasks = segments.reduce((n, s) => n + s.tasks, 0);
    // A watch that saw no task would pass any limit: that is a broken trace, not a quiet page.
    assert.ok(tasks > 0, "the trace recorded no task of the page's main thread");
    return { ...segments.reduce((a, s) => (s.cpu > a.cpu ? s : a)), tasks };
  };
  return { measure, worst };
}

/**
 * The top-level task of `frame`'s renderer main thread in a trace that used the most CPU time: { cpu, wall (ms),
 * after (the last mark before it), ran (what in it cost most), tasks (how many the thread ran) }.
 */
function costliestTask(trace, frame) {
  const events = trace.traceEvents ?? trace;
  const pids = new Set(events.filter((e) => e.name === "TracingStartedInBrowser" || e.name === "FrameCommittedInBrowser")
    .flatMap((e) => e.args?.data?.frames ?? [e.args?.data ?? {}])
    .filter((f) => f.frame === frame && f.processId).map((f) => f.processId));
  const main = events.find((e) => e.name === "thread_name" && pids.has(e.pid) && e.args?.name === "CrRendererMain");
  if (!main) throw new Error(`the trace has no main thread for the page's frame ${frame}`);
  const own = events.filter((e) => e.pid === main.pid && e.tid === main.tid);
  const tasks = own.filter((e) => e.ph === "X" && e.name === "RunTask" && typeof e.tdur === "number");
  const ms = (us) => Math.round(us / 100) / 10;
  if (tasks.length === 0) return { cpu: 0, wall: 0, after: "no mark in its segment", ran: "no task", tasks: 0 };
  const task = tasks.reduce((a, t) => (t.tdur > a.tdur ? t : a));
  const inside = own.filter((e) => e !== task && e.ph === "X" && e.ts >= task.ts && e.ts + (e.dur ?? 0) <= task.ts + task.dur
    && ["FunctionCall", "EventDispatch", "TimerFire", "FireAnimationFrame", "Layout", "UpdateLayoutTree", "Paint"].includes(e.name));
  const ran = inside.sort((a, b) => (b.tdur ?? 0) - (a.tdur ?? 0)).slice(0, 3).map((e) => {
    const d = e.args?.data ?? {};
    const stack = d.stackTrace ?? e.args?.beginData?.stackTrace ?? [];
    const where = d.functionName || d.type || stack.slice(0, 3).map((f) => f.functionName || "(anonymous)").join(" < ");
    return `${e.name}${where ? ` ${where}` : ""} ${ms(e.tdur ?? 0)} ms CPU`;
  }).join("; ") || "no script or layout attributed";
  const after = own.filter((e) => e.cat?.includes("blink.user_timing") && e.ph !== "X" && e.ts <= task.ts).reduce((a, m) => (!a || m.ts > a.ts ? m : a), null)?.name ?? "no mark in its segment";
  return { cpu: ms(task.tdur), wall: ms(task.dur), after, ran, tasks: tasks.length };
}

/**
 * Asserts that no main-thread task in `watch`'s segments used more than `limit` ms of CPU (default 50 ms, the
 * long-task threshold: the model runs in a worker, so the page's thread only draws), and logs the worst.
 */
export async function assertMainThreadQuiet(watch, what, limit = 50) {
  const { cpu, wall, after, ran, tasks } = watch.worst();
  const said = `${cpu} ms of CPU (${wall} ms of wall time) ${what} (after mark "${after}"; ${ran})`;
  console.log(`the costliest of the page's ${tasks} main-thread tasks: ${said}`);
  assert.ok(cpu <= limit, `a main-thread task used ${said}; the limit is ${limit} ms of CPU`);
}
