// Browser test of the pages a script gets: each seed example's own page (scripts/examples/NAME.web/,
// served at / when that example runs), and the default page's plain mode with scripts that do not
// speak chat.lua's protocol. The real confab server + Debian's Chromium driven by playwright-core.
//   node spec/browser/examples.mjs
// Env: CONFAB_BIN (default build/confab of this repository), CHROMIUM (default /usr/bin/chromium).
// Every server is started from a temporary directory with neither --script's page nor --web given
// (unless a test says so): the defaults must not depend on the current directory.
// Last line: "pages: N passed, N failed"; exit status 1 on any failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = path.resolve(root, process.env.CONFAB_BIN || path.join('build', 'confab'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(here, 'screenshots');
const EX = path.join(root, 'scripts', 'examples');
const WAIT_MS = 10000;          // upper bound for any one awaited DOM state
const WATCHDOG_MS = 180000;     // upper bound for the whole run
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 760 };

let passed = 0;
let failed = 0;
let server = null;              // {proc, port, log[]}
let context = null;
let userDataDir = null;
let tmp = null;
const pageErrors = [];

// ---- the server ----

// Starts confab with args on 127.0.0.1:0 from the temporary directory; resolves with
// {proc, port, log} once it logs "listening on".
function startServer(args) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--addr', '127.0.0.1:0', ...args], { cwd: tmp, stdio: ['ignore', 'ignore', 'pipe'] });
    const log = [];
    let buf = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`server did not report "listening on" in 10 s:\n${log.join('\n')}`)), 10000);
    function finish(err, val) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) { try { proc.kill('SIGKILL'); } catch { /* already gone */ } reject(err); } else resolve(val);
    }
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        log.push(line);
        if (log.length > 400) log.shift();
        const m = /listening on [^\s:]+:(\d+)/.exec(line);
        if (m) finish(null, { proc, port: Number(m[1]), log });
      }
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${BIN}: ${e.message}`)));
    proc.on('exit', (code, sig) => finish(new Error(`server exited (${code ?? sig}) before listening:\n${log.join('\n')}`)));
  });
}

// SIGTERM by PID; resolves when it has exited (SIGKILL after 3 s).
function stopServer(s) {
  return new Promise((resolve) => {
    if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => { try { process.kill(s.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    s.proc.once('exit', () => { clearTimeout(t); resolve(); });
    try { process.kill(s.proc.pid, 'SIGTERM'); } catch { clearTimeout(t); resolve(); }
  });
}

// ---- tiny test harness ----
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(a, b, msg) {
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}\n    got:      ${ja}\n    expected: ${jb}`);
}

// Runs one test with its own server (args) and closes its pages afterwards.
async function test(name, args, fn) {
  const t0 = Date.now();
  const pages = [];
  try {
    server = await startServer(args);
    const base = `http://127.0.0.1:${server.port}`;
    const open = async (hash = '', viewport = DESKTOP) => {
      const page = await context.newPage();
      pages.push(page);
      await page.setViewportSize(viewport);
      page.setDefaultTimeout(WAIT_MS);
      page.on('pageerror', (e) => pageErrors.push(`${name}: ${e.message}`));
      await page.goto(`${base}/${hash}`);
      return page;
    };
    await fn(open, base);
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n  ')}`);
    if (server) console.log(`  --- server log ---\n  ${server.log.slice(-15).join('\n  ')}`);
  }
  for (const p of pages) await p.close().catch(() => {});
  await stopServer(server);
  server = null;
}

// Waits until fn(arg) is true in the page (polls on a timer: background pages throttle frames).
function until(page, fn, arg) {
  return page.waitForFunction(fn, arg, { polling: 20 });
}
// Waits until some element matching sel has exactly the text t.
function waitText(page, sel, t) {
  return until(page, ([s, x]) => [...document.querySelectorAll(s)].some((e) => e.textContent === x), [sel, t]);
}
const textsOf = (page, sel) => page.$$eval(sel, (els) => els.map((e) => e.textContent));

// Screenshots: desktop light, and phone dark (the page re-laid out at phone width).
async function shots(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop-light.png`) });
  await page.setViewportSize(PHONE);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone-dark.png`) });
  await page.emulateMedia({ colorScheme: 'light' });
  await page.screenshot({ path: path.join(SHOTS, `${name}-phone-light.png`) });
  await page.setViewportSize(DESKTOP);
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.screenshot({ path: path.join(SHOTS, `${name}-desktop-dark.png`) });
  await page.emulateMedia({ colorScheme: null });
}

// The default chat page's login.
async function login(page, name) {
  await page.locator('#login-name').fill(name);
  await page.locator('#login-button').click();
}

const tag = Date.now().toString(36);      // makes texts unique to this run

// ---- cleanup, in every case ----
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  if (context) await context.close().catch(() => {});
  if (server) await stopServer(server);
  for (const d of [userDataDir, tmp]) if (d) fs.rmSync(d, { recursive: true, force: true });
}
process.on('exit', () => {
  if (server && server.proc.exitCode === null && server.proc.signalCode === null) {
    try { process.kill(server.proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => { await cleanup(); process.exit(130); });
}
const watchdog = setTimeout(async () => {
  console.log(`not ok - the run took longer than ${WATCHDOG_MS / 1000} s`);
  failed++;
  await cleanup();
  console.log(`pages: ${passed} passed, ${failed} failed`);
  process.exit(1);
}, WATCHDOG_MS);

// ---- the tests ----
async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`no server binary at ${BIN} (run make)`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-pages-'));
  userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-chromium-'));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: DESKTOP,
  });
  for (const p of context.pages()) await p.close();

  await test('gorilla.lua: its home.html, a log and an input; every line reaches everyone',
    ['--script', path.join(EX, 'gorilla.lua'), '--max-message', '512'], async (open) => {
      const a = await open();
      const b = await open();
      for (const p of [a, b]) await p.waitForSelector('body[data-state="open"]', { state: 'attached' });
      await a.locator('#msg').fill(`  hello from a ${tag}  `);
      await a.locator('#msg').press('Enter');
      for (const p of [a, b]) await waitText(p, '#log .line', `hello from a ${tag}`);
      await b.locator('#msg').fill(`b answers ${tag}`);
      await b.locator('input[type=submit]').click();
      await waitText(a, '#log .line', `b answers ${tag}`);
      eq(await textsOf(a, '#log .line'), [`hello from a ${tag}`, `b answers ${tag}`], 'a\'s log, in order');
      // Over the 512-byte limit: refused by the page, the connection stays.
      await a.locator('#msg').fill('x'.repeat(513));
      await a.locator('#msg').press('Enter');
      await a.locator('#log .note', { hasText: 'longer than 512 bytes' }).waitFor();
      assert(await a.evaluate(() => document.body.dataset.state) === 'open', 'still connected');
      await shots(a, 'ex-gorilla');
    });

  await test('namefirst.lua: the first line is the name, later lines arrive as "name: text"',
    ['--script', path.join(EX, 'namefirst.lua'), '--max-message', '512'], async (open) => {
      const a = await open();
      const b = await open();
      for (const p of [a, b]) await p.waitForSelector('body[data-state="open"]', { state: 'attached' });
      eq(await a.locator('#send').inputValue(), 'Set name', 'the button asks for the name first');
      for (const [p, n] of [[a, 'alice'], [b, 'bob']]) {
        await p.locator('#msg').fill(n);
        await p.locator('#msg').press('Enter');
        await p.waitForSelector(`body[data-name="${n}"]`, { state: 'attached' });
      }
      await b.locator('#msg').fill(`yo ${tag}`);
      await b.locator('#msg').press('Enter');
      for (const p of [a, b]) await waitText(p, '#log .line', `bob: yo ${tag}`);
      await a.locator('#msg').fill(`hi bob ${tag}`);
      await a.locator('#msg').press('Enter');
      await waitText(b, '#log .line', `alice: hi bob ${tag}`);
      eq(await textsOf(b, '#log .line .who'), ['bob', 'alice'], 'names set apart');
      await shots(b, 'ex-namefirst');
    });

  await test('jsonlogin.lua: login, the online count and user list, lines, logout',
    ['--script', path.join(EX, 'jsonlogin.lua')], async (open) => {
      const a = await open();
      const b = await open();
      assert(/^user[0-9A-F]{8}$/.test(await a.locator('#uname').inputValue()), 'a name is proposed like the seed');
      for (const [p, n] of [[a, 'alice'], [b, 'bob']]) {
        await p.locator('#uname').fill(n);
        await p.locator('#uname').press('Enter');
        await p.waitForSelector(`body[data-user="${n}"]`, { state: 'attached' });
      }
      for (const p of [a, b]) {
        await until(p, () => document.getElementById('user_num').textContent === '2');
        eq(await textsOf(p, '#user_list p'), ['alice', 'bob'], 'user list in login order');
      }
      await waitText(a, '#msg_list p', 'System: bob is online');
      await a.locator('#msg_box').fill(`hi bob ${tag}`);
      await a.locator('#msg_box').press('Enter');
      await waitText(b, '#msg_list p', `alice: hi bob ${tag}`);
      eq(await a.locator('#msg_box').inputValue(), '', 'the box is cleared once sent');
      await shots(a, 'ex-jsonlogin');
      await b.close();
      await until(a, () => document.getElementById('user_num').textContent === '1');
      await waitText(a, '#msg_list p', 'System: bob went offline');
      eq(await textsOf(a, '#user_list p'), ['alice'], 'the user list after bob left');
    });

  await test('add.lua: the form sends {"A","B"} and shows the Sum; errors are shown',
    ['--script', path.join(EX, 'add.lua'), '--ws-path', '/add'], async (open) => {
      const p = await open();
      await p.waitForSelector('#add:not([disabled])');
      await p.locator('#add').click();                       // 3 + 9, as in the seed
      await until(p, () => document.getElementById('sum').textContent === '12');
      await p.locator('#a').fill('-20');
      await p.locator('#b').fill('7');
      await p.locator('#b').press('Enter');
      await until(p, () => document.getElementById('sum').textContent === '-13');
      await p.locator('#a').fill('1.5');                     // a number, but not an integer
      await p.locator('#add').click();
      await p.locator('#status.bad', { hasText: 'The server says' }).waitFor();
      eq((await textsOf(p, '#history li')).length, 3, 'three requests listed');
      await shots(p, 'ex-add');
    });

  await test('pathrooms.lua: rooms by path, 红色 included (percent-encoded, decoded by the script)',
    ['--script', path.join(EX, 'pathrooms.lua')], async (open) => {
      const r1 = await open('#红色');
      const r2 = await open('#红色');
      const blue = await open('#blue');
      for (const p of [r1, r2]) await p.waitForSelector('body[data-room="红色"]', { state: 'attached' });
      await blue.waitForSelector('body[data-room="blue"]', { state: 'attached' });
      assert((await r1.locator('#where').textContent()).endsWith('/ws/%E7%BA%A2%E8%89%B2'), 'the path is percent-encoded');
      await blue.locator('#msg').fill(`blue only ${tag}`);
      await blue.locator('#msg').press('Enter');
      await waitText(blue, '#log div', `blue only ${tag}`);
      await r1.locator('#msg').fill(`你好 ${tag}`);
      await r1.locator('#msg').press('Enter');
      await waitText(r2, '#log div', `你好 ${tag}`);
      await waitText(r1, '#log div', `你好 ${tag}`);
      eq((await textsOf(r2, '#log div')).filter((t) => t.includes(tag)), [`你好 ${tag}`], 'red sees red only');
      // Moving to another room through the field reconnects there.
      await r2.locator('#room').fill('blue');
      await r2.locator('#room').press('Enter');
      await r2.waitForSelector('body[data-room="blue"]', { state: 'attached' });
      await blue.locator('#msg').fill(`blue again ${tag}`);
      await blue.locator('#msg').press('Enter');
      await waitText(r2, '#log div', `blue again ${tag}`);
      // A name the script refuses is said so, within a few seconds.
      await r2.locator('#room').fill('a b');
      await r2.locator('#room').press('Enter');
      await r2.locator('#log .note.bad', { hasText: 'refused room' }).waitFor();
      await shots(r1, 'ex-pathrooms');
    });

  // The README's own snippet: every line upper-cased to everyone. The page's hello comes back
  // upper-cased, which is not chat.lua's JSON: plain mode at once.
  const readme = path.join(tmp, 'shout.lua');
  fs.writeFileSync(readme, `local confab = require "confab"
confab.on("connect", function(ev) confab.join(ev.id, "all") end)
confab.on("message", function(ev) confab.broadcast("all", ev.data:upper()) end)
`);
  await test('default page + the README snippet: plain mode, frames as lines, typed lines sent',
    ['--script', readme], async (open) => {
      const a = await open();
      const b = await open();
      await login(a, 'alice');
      // b has not logged in, but hears a's upper-cased hello, which switches it too.
      for (const p of [a, b]) await p.waitForSelector('body[data-state="plain"] #plain', { state: 'attached' });
      assert(await a.locator('#login').isHidden(), 'the login card is gone');
      // The page's hello also carries a random key and cid (README, chat protocol): match its start.
      for (const p of [a, b]) {
        await until(p, (x) => [...document.querySelectorAll('#plain-log .plain-in .plain-text')]
          .some((e) => e.textContent.startsWith(x)), '{"TYPE":"HELLO","NAME":"ALICE",');
      }
      await a.locator('#plain-input').fill(`shout ${tag}`);
      await a.locator('#plain-input').press('Enter');
      await waitText(b, '#plain-log .plain-in .plain-text', `SHOUT ${tag.toUpperCase()}`);
      await waitText(a, '#plain-log .plain-out .plain-text', `shout ${tag}`);
      await shots(a, 'plain-readme');
    });

  // A script that answers nothing: no welcome within 3 s, so plain mode, saying why.
  const silent = path.join(tmp, 'silent.lua');
  fs.writeFileSync(silent, `local confab = require "confab"
confab.on("message", function(ev) if ev.data == "ping" then confab.send(ev.id, "pong") end end)
`);
  await test('default page + a silent script: no welcome within 3 s, plain mode says why',
    ['--script', silent], async (open) => {
      const a = await open();
      await login(a, 'alice');
      await a.waitForSelector('body[data-state="plain"]', { state: 'attached' });
      assert((await a.locator('#plain-why').textContent()).includes('did not answer'), 'the reason is given');
      await a.locator('#plain-input').fill('ping');
      await a.locator('#plain-input').press('Enter');
      await waitText(a, '#plain-log .plain-in .plain-text', 'pong');
    });

  // gorilla.lua with the default page given explicitly: its echo of hello is not chat.lua's JSON.
  await test('default page (--web given) + gorilla.lua: plain mode, two pages talk',
    ['--script', path.join(EX, 'gorilla.lua'), '--web', path.join(root, 'web')], async (open) => {
      const a = await open();
      const b = await open();
      await a.locator('#login-title').waitFor();                // the chat page, not gorilla's
      await login(a, 'x');
      for (const p of [a, b]) await p.waitForSelector('body[data-state="plain"]', { state: 'attached' });
      await b.locator('#plain-input').fill(`from b ${tag}`);
      await b.locator('#plain-input').press('Enter');
      await waitText(a, '#plain-log .plain-in .plain-text', `from b ${tag}`);
    });

  // The WebSocket endpoint is elsewhere: the page says so and offers plain mode at another path.
  await test('default page + add.lua on /add: the page says it cannot talk at /ws and offers a path',
    ['--script', path.join(EX, 'add.lua'), '--ws-path', '/add', '--web', path.join(root, 'web')], async (open) => {
      const a = await open();
      await a.locator('#plain-offer-text', { hasText: 'refuses WebSocket connections' }).waitFor();
      await shots(a, 'plain-offer');
      await a.locator('#plain-path').fill('/add');
      await a.locator('#plain-open').click();
      await a.waitForSelector('body[data-plain="open"]', { state: 'attached' });
      await a.locator('#plain-input').fill('{"A":3,"B":9}');
      await a.locator('#plain-input').press('Enter');
      await waitText(a, '#plain-log .plain-in .plain-text', '{"Sum":12}');
    });

  await test('no uncaught errors in the pages', [], async () => { eq(pageErrors, [], 'page errors'); });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - setup: ${e && e.message || e}`);
}
await cleanup();
clearTimeout(watchdog);
console.log(`pages: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
