// Shared fixtures of the browser suite: a static server for the trunk-built dist/ on 127.0.0.1, and Debian's
// chromium driven by playwright-core with SwiftShader's WebGPU (a software adapter, but the real WebGPU path).
import { createServer } from "node:http";
import { readFile, mkdir } from "node:fs/promises";
import { extname, join, normalize, resolve } from "node:path";
import { execFileSync } from "node:child_process";
import { chromium } from "playwright-core";

export const ROOT = resolve(import.meta.dirname, "../..");
export const DIST = join(ROOT, "dist");
export const SCREENSHOTS = join(import.meta.dirname, "screenshots");

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
 * sends it. `extra` maps "owner/repo/file" to bytes (more repositories for a test); `requests` counts what was asked.
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

/** Launches headless chromium; `webgpu: false` starts it with WebGPU disabled (for the CPU fallback test). */
export async function launch({ webgpu = true } = {}) {
  const args = [
    "--no-sandbox", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-angle=swiftshader",
  ];
  if (webgpu) args.push("--enable-unsafe-webgpu", "--enable-features=Vulkan", "--use-vulkan=swiftshader");
  else args.push("--disable-features=WebGPU");
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
