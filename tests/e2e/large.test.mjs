// Large and odd inputs: a big real file pasted into the editor (the CPython standard library's typing.py, ~3,700
// lines) stays in bounded panes, is chunked whole in the worker (the chunk view draws a slice that follows the
// editor's scroll position), and typing after the paste has no main-thread task over 100 ms of CPU; empty input,
// binary-looking text and a very long line get a clear answer. The CPU backend runs the model here (`?gpu=0`):
// SwiftShader would take minutes over a file this size, and the point is the page, not the adapter.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { serve, launch, open, screenshot, watchMainThread, assertMainThreadQuiet } from "./harness.mjs";

const LOAD = 240_000;
const WORK = 600_000;

let server, browser;
before(async () => { server = await serve(); browser = await launch({ webgpu: false }); });
after(async () => { await browser?.close(); await server?.close(); });

/** Pastes `text` into the editor as a user's paste does: a `paste` event with the text on its clipboard data. */
async function paste(page, text) {
  await page.getByTestId("editor").focus();
  await page.evaluate((t) => {
    const data = new DataTransfer();
    data.setData("text/plain", t);
    document.querySelector("[data-testid=editor]").dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }));
  }, text);
}

/** A large, real Python file from the interpreter's own standard library. */
function bigFile() {
  const path = execFileSync("python3", ["-c", "import typing; print(typing.__file__)"]).toString().trim();
  return readFileSync(path, "utf8");
}

test("a 3,000-line paste: bounded panes, whole-text chunking that follows the scroll, typing stays responsive", { timeout: 20 * 60_000 }, async () => {
  const text = bigFile();
  const lines = text.split("\n").length;
  assert.ok(lines > 3000, `typing.py has only ${lines} lines`);
  const { page, problems } = await open(browser, `${server.url}?gpu=0`);
  await page.waitForFunction(() => /^Ready/.test(document.querySelector("[data-testid=status]")?.textContent ?? ""), null, { timeout: LOAD });
  await page.getByTestId("editor").fill("");
  await paste(page, text);
  // The line-number gutter sizes itself to the largest number: four digits once the file is in.
  await page.waitForFunction(() => [...document.querySelectorAll(".cm-lineNumbers .cm-gutterElement")].some((e) => e.textContent.length >= 4), null, { timeout: 60_000 });

  // Typing right after the paste, while the worker chunks the whole file: nothing blocks the page for long.
  const watch = await watchMainThread(browser, page);
  await page.getByTestId("editor").focus();
  await watch.measure(async () => {
    await page.keyboard.press("Control+End");
    await page.keyboard.type("\n\ndef added_after_the_paste(x):\n    return x + 1\n", { delay: 40 });
    await page.waitForTimeout(500);
  });
  await assertMainThreadQuiet(watch, `while typing after a ${lines}-line paste`, 100);

  // The panes stay bounded: the page does not grow with the file.
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  assert.ok(height < 4000, `the page is ${height} px tall with a ${lines}-line file in it`);

  // The whole file is chunked; the view shows a slice where the editor is (the end, after typing there) and says
  // so; back at the top of the editor, it shows the top.
  await page.waitForFunction(() => /Showing lines \d+–\d+ of \d+/.test(document.querySelector("[data-testid=chunk-note]")?.textContent ?? ""), null, { timeout: WORK });
  await page.evaluate(() => { document.querySelector(".cm-scroller").scrollTop = 0; });
  await page.waitForFunction(() => /Showing lines 1–\d+ of \d+/.test(document.querySelector("[data-testid=chunk-note]")?.textContent ?? ""), null, { timeout: WORK });
  const note = await page.getByTestId("chunk-note").textContent();
  const total = Number(note.match(/of (\d+) \(/)[1]);
  assert.equal(total, lines + 4, "the chunk view counts every line of the text");
  const summary = await page.getByTestId("chunk-summary").textContent();
  assert.ok(Number(summary.match(/· (\d+) tokens/)[1]) > 20_000, `not the whole file: ${summary}`);
  await screenshot(page, "30-large-paste");

  // Scrolling the editor moves the slice: the view follows.
  await page.evaluate(() => {
    const scroller = document.querySelector(".cm-scroller");
    scroller.scrollTop = scroller.scrollHeight / 2;
  });
  await page.waitForFunction(() => {
    const m = (document.querySelector("[data-testid=chunk-note]")?.textContent ?? "").match(/Showing lines (\d+)–/);
    return m && Number(m[1]) > 1000;
  }, null, { timeout: WORK });
  await screenshot(page, "31-large-scrolled");

  // Empty input, binary-looking text and a very long line: a clear answer each, nothing breaks.
  await page.getByTestId("editor").fill("");
  await page.waitForFunction(() => /Type some code/.test(document.querySelector("[data-testid=chunk-note]")?.textContent ?? ""), null, { timeout: WORK });
  await page.getByTestId("editor").fill("");
  await paste(page, "\u0001\u0002\u0003\ufffd\u0000 binary? \u00ff\u00fe".repeat(50));
  await page.waitForFunction(() => document.querySelector("[data-testid=chunk-summary]") || /Could not/.test(document.querySelector("[data-testid=chunk-note]")?.textContent ?? ""), null, { timeout: WORK });
  await page.getByTestId("editor").fill("");
  await paste(page, `x = [${"1, ".repeat(8000)}]\n`);
  // One 24,000-character line: all of it is chunked (in windows), and a slice of it drawn.
  await page.waitForFunction(() => Number((document.querySelector("[data-testid=chunk-summary]")?.textContent ?? "").match(/· (\d+) tokens/)?.[1] ?? 0) > 10_000, null, { timeout: WORK });
  assert.ok((await page.getByTestId("token").count()) <= 1200, "the view draws a bounded slice of a long line");
  assert.equal(await page.getByTestId("error").count(), 0);
  assert.deepEqual(problems, []);
});
