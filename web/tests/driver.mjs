// Drives Debian's Chromium for the Rust browser tests (tests/desk_browser.rs): one JSON command
// per line on standard input, one JSON answer per line on standard output. Each named page has a
// browser context of its own (its own session storage: its own signed-in agent).
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-dev-shm-usage"],
});
const pages = new Map();

function page(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page '${name}'`);
  return p;
}

const TIMEOUT = 10_000;

const commands = {
  async open({ page: name, url }) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: "fr-FR" });
    const p = await context.newPage();
    const errors = [];
    p.on("pageerror", (e) => errors.push(String(e)));
    p.errors = errors;
    pages.set(name, p);
    await p.goto(url);
  },
  /** Opens `url` in a new tab of the browser context of page `from` (same cookies, its own session storage). */
  async openTab({ page: name, from, url }) {
    const p = await page(from).context().newPage();
    p.errors = [];
    p.on("pageerror", (e) => p.errors.push(String(e)));
    pages.set(name, p);
    await p.goto(url);
  },
  async reload({ page: name }) {
    await page(name).reload();
  },
  async fill({ page: name, selector, value }) {
    await page(name).locator(selector).fill(value, { timeout: TIMEOUT });
  },
  async click({ page: name, selector }) {
    await page(name).locator(selector).click({ timeout: TIMEOUT });
  },
  async press({ page: name, key }) {
    await page(name).keyboard.press(key);
  },
  /** Presses a key on several pages at once (a race between agents). */
  async pressAll({ pages: names, key }) {
    await Promise.all(names.map((name) => page(name).keyboard.press(key)));
  },
  async select({ page: name, selector, value }) {
    await page(name).locator(selector).selectOption(value, { timeout: TIMEOUT });
  },
  async text({ page: name, selector }) {
    return await page(name).locator(selector).innerText({ timeout: TIMEOUT });
  },
  async count({ page: name, selector }) {
    return await page(name).locator(selector).count();
  },
  /** Waits until the element's text contains `contains`; answers the text. */
  async wait({ page: name, selector, contains, timeout }) {
    const p = page(name);
    await p.waitForFunction(
      ([s, c]) => (document.querySelector(s)?.textContent ?? "").includes(c),
      [selector, contains],
      { timeout: timeout ?? TIMEOUT, polling: 50 },
    );
    return await p.locator(selector).first().innerText();
  },
  /** Waits until `selector` matches `count` elements. */
  async waitCount({ page: name, selector, count, timeout }) {
    await page(name).waitForFunction(
      ([s, n]) => document.querySelectorAll(s).length === n,
      [selector, count],
      { timeout: timeout ?? TIMEOUT, polling: 50 },
    );
  },
  /** The accessible names and roles of the page's landmarks and controls, as a screen reader hears them. */
  async snapshot({ page: name }) {
    return await page(name).locator("body").ariaSnapshot();
  },
  async evaluate({ page: name, script }) {
    return await page(name).evaluate(script);
  },
  async errors({ page: name }) {
    return page(name).errors;
  },
  async shot({ page: name, path }) {
    await page(name).screenshot({ path, fullPage: false });
  },
};

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const command = JSON.parse(line);
  const started = Date.now();
  let answer;
  try {
    const value = await commands[command.op](command);
    answer = { ok: true, value: value ?? null, ms: Date.now() - started };
  } catch (error) {
    answer = { ok: false, error: String(error?.message ?? error).split("\n").slice(0, 6).join("\n") };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
