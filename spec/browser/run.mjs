// Browser test of the chat page: the real confab server + Debian's Chromium driven by
// playwright-core (never a downloaded browser). Run from anywhere: node spec/browser/run.mjs
// Env: CONFAB_BIN (default build/confab of this repository), CHROMIUM (default /usr/bin/chromium).
// Last line: "browser: N passed, N failed"; exit status 1 on any failure.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = process.env.CONFAB_BIN || path.join(root, 'build', 'confab');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOTS = path.join(here, 'screenshots');
const WAIT_MS = 10000;          // upper bound for any one awaited DOM state
const WATCHDOG_MS = 240000;     // upper bound for the whole run
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 760 };

let passed = 0;
let failed = 0;
let server = null;              // {proc, port, log[]}
let browser = null;
const proxies = [];
const pageErrors = [];

// ---- the server ----

// Flags of a server that a new one may take over (test e): SO_REUSEPORT, a 1 s drain.
const TAKEOVER = ['--reuse-port', '--drain-time', '1'];

// Starts confab on 127.0.0.1:port (0 = ephemeral) and resolves with {proc, port, log} once it
// logs "listening on". Rejects if it exits first or takes more than 10 s.
// `extra` flags follow the others.
function startServer(port, extra = []) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--addr', `127.0.0.1:${port}`, '--script', 'scripts/chat.lua', '--web', 'web', ...extra],
      { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
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
        const m = /listening on (?:\[[^\]]*\]|[^\s:]+):(\d+)/.exec(line);
        if (m) finish(null, { proc, port: Number(m[1]), log });
      }
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${BIN}: ${e.message}`)));
    proc.on('exit', (code, sig) => finish(new Error(`server exited (${code ?? sig}) before listening:\n${log.join('\n')}`)));
  });
}

// Kills the server by its PID and resolves when it has exited (SIGKILL after 3 s).
function stopServer(s) {
  return new Promise((resolve) => {
    if (!s || s.proc.exitCode !== null || s.proc.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => { try { process.kill(s.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    s.proc.once('exit', () => { clearTimeout(t); resolve(); });
    try { process.kill(s.proc.pid, 'SIGTERM'); } catch { clearTimeout(t); resolve(); }
  });
}

// A TCP relay in front of the server whose connections can be cut, to drop one page's link
// without restarting the server (same epoch: the resume must bring exactly the missed lines).
function startProxy(target) {
  const socks = new Set();
  let down = false;
  const srv = net.createServer((c) => {
    if (down) { c.destroy(); return; }
    const u = net.connect(target, '127.0.0.1');
    socks.add(c); socks.add(u);
    c.on('error', () => u.destroy());
    u.on('error', () => c.destroy());
    c.on('close', () => { socks.delete(c); u.destroy(); });
    u.on('close', () => { socks.delete(u); c.destroy(); });
    c.pipe(u); u.pipe(c);
  });
  const p = {
    srv,
    port: 0,
    cut() { down = true; for (const s of socks) s.destroy(); },
    restore() { down = false; },
    close() { down = true; for (const s of socks) s.destroy(); srv.close(); },
  };
  proxies.push(p);
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { p.port = srv.address().port; resolve(p); });
  });
}

// ---- tiny test harness ----
function assert(cond, msg) { if (!cond) throw new Error(msg); }
function eq(a, b, msg) {
  const ja = JSON.stringify(a);
  const jb = JSON.stringify(b);
  if (ja !== jb) throw new Error(`${msg}\n    got:      ${ja}\n    expected: ${jb}`);
}
async function test(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    passed++;
    console.log(`ok - ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n  ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n  ')}`);
  }
}

// ---- page helpers ----
// Each simulated person has a browser context of their own (their own localStorage, so their own
// key); `ctx` reuses one, as a reload or a second tab of the same person does.
async function newContext() {
  return browser.newContext({ viewport: DESKTOP });
}
async function openPage(base, viewport, ctx) {
  const page = await (ctx || await newContext()).newPage();
  await page.setViewportSize(viewport || DESKTOP);
  page.setDefaultTimeout(WAIT_MS);
  page.on('pageerror', (e) => pageErrors.push(`${page.__who || '?'}: ${e.message}`));
  await page.goto(base + '/');
  return page;
}

async function login(page, name) {
  page.__who = name;
  await page.locator('#login-name').fill(name);
  await page.locator('#login-button').click();
  await page.waitForSelector('body[data-state="online"]');
  await page.locator('#me-name', { hasText: name }).waitFor();
}

async function say(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

// Waits until fn(arg) is true in the page. Polls on a short timer: the default polls on
// animation frames, which Chromium throttles in a page that is not in front.
function until(page, fn, arg) {
  return page.waitForFunction(fn, arg, { polling: 20 });
}

// Waits until the current view shows a message whose text is exactly `text`.
function waitLine(page, text) {
  return until(page, (t) => [...document.querySelectorAll('#log li.msg .text')].some((e) => e.textContent === t), text);
}

// The message lines of the current view, in order.
function lines(page) {
  return page.$$eval('#log li.msg:not(.pending)', (els) => els.map((e) => ({
    key: `${e.dataset.epoch}:${e.dataset.room}:${e.dataset.id}`,
    from: e.querySelector('.from').textContent,
    text: e.querySelector('.text').textContent,
    archived: e.classList.contains('archived'),
  })));
}
const texts = (ls) => ls.map((l) => l.text);

async function waitCount(page, n) {
  await until(page, (k) => document.querySelectorAll('#log li.msg:not(.pending)').length === k, n)
    .catch(async () => { throw new Error(`expected ${n} lines, have ${(await lines(page)).length}: ${JSON.stringify(texts(await lines(page)))}`); });
}

function noDuplicates(ls, who) {
  const keys = ls.map((l) => l.key);
  const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
  eq(dup, [], `${who} shows duplicated lines`);
}

async function members(page) {
  return page.$$eval('#member-list li', (els) => els.map((e) => e.dataset.name).sort());
}

async function unreadOf(page, room) {
  const b = page.locator(`#room-list li[data-room="${room}"] .badge`);
  return (await b.count()) ? (await b.textContent()).trim() : '';
}

async function shot(page, name) {
  fs.mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`) });
}

// ---- cleanup, in every case ----
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const p of proxies) p.close();
  if (browser) await browser.close().catch(() => {});
  if (server) await stopServer(server);
}
process.on('exit', () => {
  // Last resort if something threw past cleanup(): never leave the server running.
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
  console.log(`browser: ${passed} passed, ${failed} failed`);
  process.exit(1);
}, WATCHDOG_MS);

// ---- the tests ----
async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`no server binary at ${BIN} (run make)`);
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}`);
  server = await startServer(0);
  const port = server.port;
  const base = `http://127.0.0.1:${port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });   // launch() gives the browser a fresh temporary profile (user-data-dir) of its own

  const alice = await openPage(base);
  let bob = await openPage(base);
  const tag = Date.now().toString(36);      // makes texts unique to this run

  await test('a: two pages pick names, chat, and see each other in the member list', async () => {
    await shot(alice, 'login-desktop');
    await login(alice, 'alice');
    await login(bob, 'bob');
    await say(alice, `hello from alice ${tag}`);
    await waitLine(bob, `hello from alice ${tag}`);
    await waitLine(alice, `hello from alice ${tag}`);
    await say(bob, `hi alice, bob here ${tag}`);
    await waitLine(alice, `hi alice, bob here ${tag}`);
    for (const p of [alice, bob]) {
      await until(p, () => ['alice', 'bob'].every((n) => document.querySelector(`#member-list li[data-name="${n}"]`)));
      eq(await members(p), ['alice', 'bob'], `${p.__who}'s member list`);
    }
    const ls = await lines(bob);
    eq(texts(ls).slice(-2), [`hello from alice ${tag}`, `hi alice, bob here ${tag}`], 'bob\'s lines in order');
    eq(ls.slice(-2).map((l) => l.from), ['alice', 'bob'], 'senders');
  });

  await test('a2: a taken name (any case) is refused next to the form', async () => {
    const carol = await openPage(base);
    try {
      await carol.locator('#login-name').fill('ALICE');
      await carol.locator('#login-button').click();
      await carol.locator('#login-error', { hasText: /taken/i }).waitFor();
      eq(await carol.evaluate(() => document.body.dataset.state), 'login', 'state after name_taken');
      assert(await carol.locator('#app').isHidden(), 'the chat must stay hidden');
      await shot(carol, 'login-error-desktop');
    } finally { await carol.close(); }
  });

  // The flood runs beside the other tests (the server paces it to 5 messages a second, so it
  // takes about 45 s): a person types 200 lines as fast as the keyboard goes, in a room of its
  // own; "flood: ..." below checks that every one arrived, once, in order.
  const FLOOD_N = 200;
  const floodTexts = Array.from({ length: FLOOD_N }, (_, i) => `flood ${i + 1} ${tag}`);
  let flood = null;
  await test('flood: 200 lines typed quickly are all kept (one calm notice, no error lines)', async () => {
    const flo = await openPage(base);
    const obs = await openPage(base);
    await login(flo, 'flo');
    await login(obs, 'obs');
    for (const p of [flo, obs]) {
      await say(p, '/join flood');
      await p.locator('#view-title', { hasText: 'flood' }).waitFor();
      await say(p, '/leave lobby');
      await p.locator('#room-list li[data-room="lobby"]').waitFor({ state: 'detached' });
    }
    for (const t of floodTexts) await say(flo, t);
    // Everything typed is on screen at once: accepted lines and pending ones, in order.
    const shown = await flo.$$eval('#log li.msg .text', (els) => els.map((e) => e.textContent));
    eq(shown, floodTexts, 'flo\'s screen right after typing');
    // One notice while more than a burst waits (how many still wait depends on how fast the
    // keyboard went): never an error line per refusal.
    const st = await flo.evaluate(() => ({
      waiting: document.querySelectorAll('#log li.pending').length,
      shown: !document.getElementById('outbox-status').hidden,
      text: document.getElementById('outbox-status').textContent }));
    eq(st.shown, st.waiting > 8, `the outbox notice with ${st.waiting} waiting (${st.text})`);
    if (st.shown) assert(new RegExp(`^Sending ${st.waiting} messages`).test(st.text), st.text);
    eq(await flo.locator('#log li.note.error').count(), 0, 'error lines on flo\'s page');
    await shot(flo, 'flood-desktop');
    // A reload in the middle loses nothing and sends nothing twice: the outbox is kept in the
    // tab's storage, and lines the server took before the reload come back in the history with
    // their cid.
    // The room's history keeps the last 100 lines (--history), so after the reload flo sees those
    // of the accepted lines, then the pending ones: the tail of what was typed, without a gap.
    await flo.reload();
    await flo.waitForSelector('body[data-state="online"]');
    await flo.locator('#view-title', { hasText: 'flood' }).waitFor();
    await flo.waitForFunction((last) => {
      const t = [...document.querySelectorAll('#log li.msg .text')];
      return t.length >= 100 && t[t.length - 1].textContent === last;
    }, floodTexts[FLOOD_N - 1], { polling: 50, timeout: 30000 });
    const again = await flo.$$eval('#log li.msg .text', (els) => els.map((e) => e.textContent));
    eq(again, floodTexts.slice(FLOOD_N - again.length), 'flo\'s screen after a reload in the middle of the flood');
    flood = { flo, obs };
  });

  await test('b: /join dev switches room, rooms stay apart, unread count on the other room', async () => {
    await say(alice, '/join dev');
    await alice.locator('#view-title', { hasText: 'dev' }).waitFor();
    await alice.locator('#room-list li[data-room="dev"] [aria-current="page"]').waitFor();
    await say(alice, `only in dev ${tag}`);
    await waitLine(alice, `only in dev ${tag}`);
    assert(!texts(await lines(alice)).includes(`hello from alice ${tag}`), 'dev view must not show lobby lines');
    await say(bob, `lobby while alice is away ${tag}`);
    await waitLine(bob, `lobby while alice is away ${tag}`);
    await alice.locator('#room-list li[data-room="lobby"] .badge', { hasText: '1' }).waitFor();
    assert(!texts(await lines(alice)).includes(`lobby while alice is away ${tag}`), 'lobby line leaked into dev');
    assert(!texts(await lines(bob)).includes(`only in dev ${tag}`), 'dev line leaked into lobby');
    eq(await unreadOf(alice, 'dev'), '', 'no unread badge on the room being read');
    await shot(alice, 'unread-desktop');
    // bob joins dev too and gets its history on entering
    await say(bob, '/join dev');
    await bob.locator('#view-title', { hasText: 'dev' }).waitFor();
    await waitLine(bob, `only in dev ${tag}`);
    await until(bob, () => document.querySelectorAll('#member-list li').length === 2);
    // back to lobby clears the badge and shows the missed line
    await alice.locator('#room-list li[data-room="lobby"] button').click();
    await alice.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await waitLine(alice, `lobby while alice is away ${tag}`);
    eq(await unreadOf(alice, 'lobby'), '', 'lobby badge after reading');
    assert(!texts(await lines(alice)).includes(`only in dev ${tag}`), 'dev line shown in lobby');
  });

  await test('typing line, /me action and a direct message', async () => {
    // alice in lobby, bob in dev: bob goes back to lobby
    await bob.locator('#room-list li[data-room="lobby"] button').click();
    await bob.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await bob.locator('#input').pressSequentially('typing something', { delay: 5 });
    await alice.locator('#typing', { hasText: 'bob is typing' }).waitFor();
    await bob.locator('#input').fill('');
    await say(bob, `/me waves ${tag}`);
    await waitLine(alice, `waves ${tag}`);
    const act = alice.locator('#log li.msg.action').last();
    eq((await act.locator('.from').textContent()).trim(), '* bob', 'action sender');
    await alice.locator('#typing', { hasText: /^$/ }).waitFor();   // a line from bob ends his typing notice
    await say(bob, `/msg alice psst ${tag}`);
    await alice.locator('#dm-list li[data-dm="bob"] .badge', { hasText: '1' }).waitFor();
    // The open room gets a notice with a link, never the text itself.
    await alice.locator('#log li.note.dm', { hasText: 'Direct message from bob' }).locator('button').waitFor();
    eq(await alice.locator('#log', { hasText: `psst ${tag}` }).count(), 0, 'the DM text was copied into the room');
    await alice.locator('#dm-list li[data-dm="bob"] button').click();
    await alice.locator('#view-title', { hasText: 'DM' }).waitFor();
    await waitLine(alice, `psst ${tag}`);
    await say(alice, `hush ${tag}`);
    await waitLine(alice, `hush ${tag}`);
    await bob.locator('#dm-list li[data-dm="alice"]').waitFor();
    await shot(alice, 'dm-desktop');
    await alice.locator('#room-list li[data-room="lobby"] button').click();
    await alice.locator('#view-title', { hasText: 'lobby' }).waitFor();
  });

  await test('e: markup in a message is shown as literal text and never runs', async () => {
    const evil = '<img src=x onerror="window.__xss=1">';
    await say(bob, evil);
    await waitLine(alice, evil);
    await waitLine(bob, evil);
    for (const p of [alice, bob]) {
      eq(await p.locator('#log img').count(), 0, `${p.__who}: an <img> element was created`);
      eq(await p.evaluate(() => typeof window.__xss), 'undefined', `${p.__who}: window.__xss`);
      const html = await p.locator('#log li.msg .text').last().innerHTML();
      assert(html.includes('&lt;img'), `${p.__who}: text not escaped: ${html}`);
    }
  });

  await test('c: reloading a page shows the room history', async () => {
    const before = await lines(alice);
    assert(before.length >= 3, `alice should have lobby lines before reload, has ${before.length}`);
    await alice.reload();
    await alice.waitForSelector('body[data-state="online"]');
    await alice.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await waitLine(alice, `hello from alice ${tag}`);
    await waitCount(alice, before.length);
    const after = await lines(alice);
    eq(texts(after), texts(before), 'lobby lines after reload');
    noDuplicates(after, 'alice');
    await alice.locator('#room-list li[data-room="dev"]').waitFor();   // her other room is back too
  });

  await test('screenshots: phone-sized layout, drawer, dark mode', async () => {
    await bob.setViewportSize(PHONE);
    assert(await bob.locator('#sidebar').isHidden() || !(await bob.locator('#sidebar').isVisible()), 'sidebar should be collapsed on a phone');
    await bob.locator('#menu-button').waitFor({ state: 'visible' });
    await shot(bob, 'chat-phone');
    await bob.locator('#menu-button').click();
    await bob.locator('#sidebar').waitFor({ state: 'visible' });
    await bob.locator('#room-list li[data-room="dev"] button').waitFor({ state: 'visible' });
    // The drawer slides in: wait until it is fully on screen (also what the screenshot needs).
    await until(bob, () => document.getElementById('sidebar').getBoundingClientRect().left === 0);
    await shot(bob, 'drawer-phone');
    await bob.emulateMedia({ colorScheme: 'dark' });
    await shot(bob, 'drawer-phone-dark');
    await bob.keyboard.press('Escape');
    await bob.locator('#sidebar').waitFor({ state: 'hidden' });
    await shot(bob, 'chat-phone-dark');
    await bob.emulateMedia({ colorScheme: 'light' });
    await bob.locator('#menu-button').click();
    await bob.locator('#sidebar').waitFor({ state: 'visible' });
    await bob.keyboard.press('Escape');
    await bob.locator('#sidebar').waitFor({ state: 'hidden' });
    await bob.setViewportSize(DESKTOP);
    await shot(alice, 'chat-desktop');
    await alice.emulateMedia({ colorScheme: 'dark' });
    await shot(alice, 'chat-desktop-dark');
    await alice.emulateMedia({ colorScheme: 'light' });
  });

  await test('scroll: reading older lines is not interrupted; a "new messages" button appears', async () => {
    // Enough lines to scroll, in few messages: chat.lua's flood control allows bursts of 10.
    const filler = (i) => `filler ${i} ${tag}\nsecond line\nthird line\nfourth line\nfifth line`;
    for (let i = 0; i < 8; i++) await say(bob, filler(i));
    await waitLine(alice, filler(7));
    // Scroll up like a reader, and let the page see its scroll event.
    await alice.evaluate(() => new Promise((resolve) => {
      const l = document.getElementById('log');
      l.addEventListener('scroll', resolve, { once: true });
      l.scrollTop = 0;
    }));
    await say(bob, `while alice scrolls ${tag}`);
    await waitLine(alice, `while alice scrolls ${tag}`);
    eq(await alice.evaluate(() => document.getElementById('log').scrollTop), 0, 'scroll position kept');
    await alice.locator('#new-messages').waitFor({ state: 'visible' });
    await shot(alice, 'new-messages-desktop');
    await alice.locator('#new-messages').click();
    await alice.locator('#new-messages').waitFor({ state: 'hidden' });
    await until(alice, () => { const l = document.getElementById('log'); return l.scrollHeight - l.scrollTop - l.clientHeight < 40; });
  });

  await test('resume after a dropped link (same server run) brings exactly the missed lines', async () => {
    const proxy = await startProxy(port);
    const carol = await openPage(`http://127.0.0.1:${proxy.port}`);
    try {
      await login(carol, 'carol');
      await waitLine(carol, `while alice scrolls ${tag}`);
      proxy.cut();
      await carol.waitForSelector('body[data-state="offline"]');
      await carol.locator('#banner').waitFor({ state: 'visible' });
      for (let i = 1; i <= 3; i++) await say(bob, `missed ${i} ${tag}`);
      await waitLine(alice, `missed 3 ${tag}`);
      // Typed while offline: kept (shown as pending) and sent once the link is back.
      await say(carol, `typed offline ${tag}`);
      await carol.locator('#log li.pending', { hasText: `typed offline ${tag}` }).waitFor();
      await carol.locator('#outbox-status', { hasText: 'when the connection is back' }).waitFor();
      proxy.restore();
      await carol.waitForSelector('body[data-state="online"]');
      await waitLine(carol, `missed 3 ${tag}`);
      await waitLine(alice, `typed offline ${tag}`);
      await waitLine(carol, `typed offline ${tag}`);
      eq(await carol.locator('#log li.pending').count(), 0, 'pending lines left after the ack');
      const a = await lines(alice);
      await waitCount(carol, a.length);
      const c = await lines(carol);
      noDuplicates(c, 'carol');
      eq(c.map((l) => l.key + ' ' + l.text), a.map((l) => l.key + ' ' + l.text), 'carol\'s lobby equals alice\'s');
    } finally { await carol.close(); proxy.close(); }
  });

  await test('bidi: a right-to-left name keeps its place before the text; bidi controls are refused', async () => {
    const sara = await openPage(base);
    try {
      await login(sara, 'سارة');
      await alice.locator('#member-list li[data-name="سارة"]').waitFor();
      await say(sara, `123 apples ${tag}`);
      await waitLine(alice, `123 apples ${tag}`);
      const li = alice.locator('#log li.msg').filter({ hasText: `123 apples ${tag}` });
      // Visually: time, name, then the text starting with "123" (not "123سارة apples").
      const pos = await li.evaluate((e) => {
        const name = e.querySelector('.from').getBoundingClientRect();
        const r = document.createRange();
        const t = e.querySelector('.text').firstChild;
        r.setStart(t, 0);
        r.setEnd(t, 3);
        const digits = r.getBoundingClientRect();
        return { nameRight: name.right, digitsLeft: digits.left };
      });
      assert(pos.digitsLeft >= pos.nameRight, `"123" drawn left of the name: ${JSON.stringify(pos)}`);
      await shot(alice, 'bidi-desktop');
      await say(sara, `\u202Eevil ${tag}`);
      await sara.locator('#log li.pending.failed', { hasText: 'bidi' }).waitFor();
      eq(await alice.locator('#log li.msg', { hasText: `evil ${tag}` }).count(), 0, 'an override-laden text reached alice');
      await say(sara, '   ');
      await sara.locator('#log li.pending').filter({ hasText: 'evil' }).locator('button', { hasText: 'discard' }).click();
      eq(await sara.locator('#log li.pending').count(), 0, 'a blank text is not even sent');
    } finally { await sara.close(); }
  });

  await test('names: a look-alike of a present name, a mixed-script name and a too-long name are refused with reasons', async () => {
    const eve = await openPage(base);
    try {
      await eve.locator('#login-name').fill('\u0430lice');          // Cyrillic а + Latin lice
      await eve.locator('#login-button').click();
      await eve.locator('#login-error', { hasText: 'mixes Cyrillic and Latin' }).waitFor();
      await eve.locator('#login-name').fill('b0b');
      await eve.locator('#login-button').click();
      await eve.locator('#login-error', { hasText: 'looks too much like bob' }).waitFor();
      const long = 'abcdefghijklmnopqrstuvwxyz';
      await eve.locator('#login-name').fill(long);
      eq(await eve.locator('#login-name').inputValue(), long, 'the name field cut the name');
      await eve.locator('#login-error', { hasText: 'too long (26 characters; at most 24)' }).waitFor();
      await shot(eve, 'login-too-long-desktop');
    } finally { await eve.close(); }
  });

  await test('two tabs of one browser, one name: the newer takes over, the older waits for a click (no tug of war)', async () => {
    const ctxT = await newContext();
    const t1 = await openPage(base, DESKTOP, ctxT);
    const t2 = await openPage(base, DESKTOP, ctxT);
    try {
      await login(t1, 'tess');
      await login(t2, 'tess');
      await t1.locator('#banner', { hasText: 'another tab' }).waitFor();
      await say(alice, `for tess ${tag}`);
      await waitLine(t2, `for tess ${tag}`);
      // t1 did not reconnect by itself: t2 is still the one online after a message round trip.
      await say(t2, `tess here ${tag}`);
      await waitLine(alice, `tess here ${tag}`);
      eq(await t2.evaluate(() => document.body.dataset.state), 'online', 'the newer tab');
      eq(await t1.evaluate(() => document.body.dataset.state), 'offline', 'the older tab');
      const banner = await t1.locator('#banner-text').textContent();
      assert(!/reconnecting/.test(banner), `the older tab schedules a reconnect: ${banner}`);
      await shot(t1, 'replaced-desktop');
      await t1.locator('#banner-retry', { hasText: 'Use it here' }).click();
      await t1.waitForSelector('body[data-state="online"]');
      await t2.locator('#banner', { hasText: 'another tab' }).waitFor();
    } finally { await t1.close(); await t2.close(); await ctxT.close(); }
  });

  await test('links: http(s) URLs are safe links, javascript: stays text', async () => {
    await say(bob, `see https://example.com/a_(b)?q=1. or javascript:alert(1) ${tag}`);
    await waitLine(alice, `see https://example.com/a_(b)?q=1. or javascript:alert(1) ${tag}`);
    const links = await alice.locator('#log li.msg').last().locator('a').evaluateAll((as) => as.map((a) => ({
      href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent })));
    eq(links, [{ href: 'https://example.com/a_(b)?q=1', rel: 'noopener noreferrer', target: '_blank', text: 'https://example.com/a_(b)?q=1' }], 'links');
    eq(await alice.locator('#log a[href^="javascript"]').count(), 0, 'a javascript: link');
  });

  await test('unread: counts survive a reload without growing, the divider marks the first unread line', async () => {
    await alice.locator('#room-list li[data-room="lobby"] button').click();
    await alice.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await say(bob, '/join dev');
    await bob.locator('#view-title', { hasText: 'dev' }).waitFor();
    await say(bob, `unread one ${tag}`);
    await say(bob, `unread two ${tag}`);
    await alice.locator('#room-list li[data-room="dev"] .badge', { hasText: '2' }).waitFor();
    await alice.reload();
    await alice.waitForSelector('body[data-state="online"]');
    await alice.locator('#room-list li[data-room="dev"]').waitFor();
    await until(alice, () => document.querySelector('#log li.msg'));
    eq(await unreadOf(alice, 'dev'), '2', 'dev unread after a reload');
    eq(await unreadOf(alice, 'lobby'), '', 'lobby unread after a reload');
    await alice.locator('#room-list li[data-room="dev"] button').click();
    await waitLine(alice, `unread two ${tag}`);
    const after = await alice.$$eval('#log li', (els) => els.map((e) => (e.classList.contains('divider') ? '--' : e.querySelector('.text') && e.querySelector('.text').textContent)).filter(Boolean));
    eq(after.slice(-3), ['--', `unread one ${tag}`, `unread two ${tag}`], 'divider above the first unread line');
    await shot(alice, 'unread-divider-desktop');
    await alice.reload();
    await alice.waitForSelector('body[data-state="online"]');
    await alice.locator('#view-title', { hasText: 'dev' }).waitFor();
    await waitLine(alice, `unread two ${tag}`);
    eq(await unreadOf(alice, 'dev'), '', 'dev unread after reading and reloading');
    eq(await alice.locator('#log li.divider').count(), 0, 'no divider once read');
    await alice.locator('#room-list li[data-room="lobby"] button').click();
    await bob.locator('#room-list li[data-room="lobby"] button').click();
  });

  await test('quick reload: no left/joined lines in the room; a real leave is announced after the grace period', async () => {
    const ctxR = await newContext();
    const rita = await openPage(base, DESKTOP, ctxR);
    const zed = await openPage(base);
    await login(rita, 'rita');
    await login(zed, 'zed');
    await alice.locator('#member-list li[data-name="zed"]').waitFor();
    const notes = () => alice.$$eval('#log li.note.presence', (els) => els.map((e) => e.textContent)
      .filter((t) => /^(rita|zed) /.test(t)));
    await alice.locator('#log li.note.presence', { hasText: 'zed joined' }).waitFor();
    const before = await notes();
    await rita.reload();
    await rita.waitForSelector('body[data-state="online"]');
    await rita.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await zed.close();
    // zed's grace period started after rita's reload: once "zed left" shows, rita's would have too.
    await alice.locator('#log li.note.presence', { hasText: 'zed left' }).waitFor({ timeout: 15000 });
    const added = (await notes()).slice(before.length);
    eq(added, ['zed left'], 'presence lines after rita\'s reload and zed\'s leaving');
    const listed = await members(alice);
    assert(listed.includes('rita') && !listed.includes('zed'), `alice's member list: ${listed}`);
    await rita.close();
    await ctxR.close();
  });

  await test('leave everything: the page says what to do, and a room can be joined from there', async () => {
    const leo = await openPage(base);
    try {
      await login(leo, 'leo');
      await leo.locator('#leave-button').click();
      await leo.locator('#empty', { hasText: 'You are not in any room' }).waitFor();
      await leo.locator('#view-title', { hasText: 'Not in any room' }).waitFor();
      const ph = await leo.locator('#input').getAttribute('placeholder');
      assert(/join/i.test(ph) && !/lobby/.test(ph.replace('/join ROOM', '')), `placeholder: ${ph}`);
      await say(leo, 'anyone here?');
      await leo.locator('#composer-error', { hasText: 'not in any room' }).waitFor();
      await shot(leo, 'no-room-desktop');
      await leo.setViewportSize(PHONE);
      await shot(leo, 'no-room-phone');
      await leo.setViewportSize(DESKTOP);
      await leo.locator('#empty button', { hasText: 'Join' }).click();
      await leo.locator('#view-title', { hasText: 'lobby' }).waitFor();
      assert(await leo.locator('#empty').isHidden(), 'the empty state stays');
    } finally { await leo.close(); }
  });

  await test('DMs: kept across a reload and delivered after being offline, each in its own view', async () => {
    const ctxB = bob.context();
    await say(alice, `/msg bob before reload ${tag}`);
    await bob.locator('#dm-list li[data-dm="alice"]').waitFor();
    await bob.reload();
    await bob.waitForSelector('body[data-state="online"]');
    await bob.locator('#dm-list li[data-dm="alice"] button').click();
    await waitLine(bob, `before reload ${tag}`);
    // bob goes away (page closed); once the room hears he left (after the grace period), alice
    // writes; bob comes back in a new tab and signs in.
    await bob.close();
    await alice.locator('#log li.note.presence', { hasText: 'bob left' }).waitFor({ timeout: 15000 });
    await say(alice, `/msg bob while you were away ${tag}`);
    await alice.locator('#log li.note.info', { hasText: 'bob is offline' }).waitFor();
    bob = await openPage(base, DESKTOP, ctxB);
    await login(bob, 'bob');
    await bob.locator('#dm-list li[data-dm="alice"] .badge', { hasText: '1' }).waitFor();
    await bob.locator('#dm-list li[data-dm="alice"] button').click();
    await waitLine(bob, `while you were away ${tag}`);
    const t = texts(await lines(bob));
    eq(t.slice(-2), [`before reload ${tag}`, `while you were away ${tag}`], 'bob\'s DM view');
    await shot(bob, 'dm-after-offline-desktop');
    await bob.locator('#room-list li[data-room="lobby"] button').click();
    await bob.locator('#view-title', { hasText: 'lobby' }).waitFor();
  });

  await test('notifications: opt-in; a DM or a mention while the tab is hidden notifies and flashes the title', async () => {
    // Test doubles for what headless Chromium cannot show: whether the tab is hidden, and the
    // Notification API (recorded instead of shown).
    const ctxN = await newContext();
    await ctxN.addInitScript(() => {
      window.__hidden = false;
      Object.defineProperty(document, 'hidden', { configurable: true, get: () => window.__hidden });
      window.__shown = [];
      function FakeNotification(title, opts) { window.__shown.push([title, opts && opts.body]); this.close = () => {}; }
      FakeNotification.permission = 'default';
      FakeNotification.requestPermission = async () => { FakeNotification.permission = 'granted'; return 'granted'; };
      window.Notification = FakeNotification;
    });
    const nina = await openPage(base, DESKTOP, ctxN);
    const hide = (h) => nina.evaluate((x) => { window.__hidden = x; document.dispatchEvent(new Event('visibilitychange')); }, h);
    try {
      await login(nina, 'nina');
      await hide(true);
      await say(bob, `/msg nina not opted in ${tag}`);
      await nina.locator('#dm-list li[data-dm="bob"] .badge').waitFor();
      eq(await nina.evaluate(() => window.__shown), [], 'notified before opting in');
      assert(!(await nina.title()).startsWith('★'), 'title flashed before opting in');
      await hide(false);
      await nina.locator('#notify').check();
      await until(nina, () => Notification.permission === 'granted');
      await hide(true);
      await say(bob, `hello nina, look ${tag}`);
      await until(nina, () => window.__shown.length === 1);
      eq(await nina.evaluate(() => window.__shown), [['bob in #lobby', `hello nina, look ${tag}`]], 'the mention\'s notification');
      await until(nina, () => document.title.startsWith('★'));
      await say(bob, `/msg nina psst ${tag}`);
      await until(nina, () => window.__shown.length === 2);
      eq((await nina.evaluate(() => window.__shown))[1], ['Direct message from bob', `psst ${tag}`], 'the DM\'s notification');
      await say(bob, `nothing for nina${tag}x`);     // "nina" inside a word is not a mention
      await waitLine(nina, `nothing for nina${tag}x`);
      eq(await nina.evaluate(() => window.__shown.length), 2, 'notifications after a non-mention');
      await hide(false);
      await until(nina, () => !document.title.startsWith('★'));
    } finally { await nina.close(); await ctxN.close(); }
  });

  await test('flood: every one of the 200 lines arrived once, in order, grouped, with no error lines', async () => {
    assert(flood, 'the flood did not start');
    const { flo, obs } = flood;
    // The server takes 5 a second: the last of 200 lands about 40 s after the first.
    await flo.waitForFunction(() => !document.querySelector('#log li.pending'), null, { polling: 100, timeout: 90000 });
    await waitCount(obs, FLOOD_N);
    eq(texts(await lines(obs)), floodTexts, 'obs sees the 200 lines in order');
    const own = texts(await lines(flo));
    eq(own, floodTexts.slice(FLOOD_N - own.length), 'flo\'s own lines (the tail, after the reload), all accepted');
    noDuplicates(await lines(obs), 'obs');
    eq(await flo.locator('#log li.note.error').count(), 0, 'error lines on flo\'s page at the end');
    eq(await flo.locator('#log li.pending').count(), 0, 'pending lines left');
    await flo.locator('#outbox-status').waitFor({ state: 'hidden' });
    eq(await obs.locator('#log li.msg.cont').count(), FLOOD_N - 1, 'grouped lines');
    await shot(obs, 'grouped-desktop');
    await obs.setViewportSize(PHONE);
    const w = await obs.locator('#log li.msg .text').last().evaluate((e) => e.getBoundingClientRect().width / document.getElementById('log').clientWidth);
    assert(w > 0.9, `on a phone the text has ${Math.round(w * 100)} % of the width`);
    await shot(obs, 'grouped-phone');
    await flo.close();
    await obs.close();
  });

  await test('d: a server restart shows offline, reconnects and resumes with no duplicated lines', async () => {
    await alice.locator('#view-title', { hasText: 'lobby' }).waitFor();
    await bob.locator('#view-title', { hasText: 'lobby' }).waitFor();
    const beforeA = await lines(alice);
    const beforeB = await lines(bob);
    assert(beforeA.length > 0, 'alice has lines');
    await stopServer(server);
    for (const p of [alice, bob]) {
      await p.waitForSelector('body[data-state="offline"]');
      await p.locator('#banner').waitFor({ state: 'visible' });
    }
    await say(bob, `typed while the server was down ${tag}`);
    await bob.locator('#log li.pending', { hasText: `typed while the server was down ${tag}` }).waitFor();
    await shot(alice, 'offline-desktop');
    server = await startServer(port, TAKEOVER);   // the next test hands this one over
    for (const p of [alice, bob]) await p.waitForSelector('body[data-state="online"]');
    await alice.locator('#banner').waitFor({ state: 'hidden' });
    // Both rooms come back, and the lines are exactly those before.
    await alice.locator('#room-list li[data-room="dev"]').waitFor();
    // bob's line typed while the server was down arrives first, then alice's.
    const typed = `typed while the server was down ${tag}`;
    await waitLine(alice, typed);
    await waitCount(alice, beforeA.length + 1);
    await waitCount(bob, beforeB.length + 1);
    eq(texts(await lines(alice)), [...texts(beforeA), typed], 'alice\'s lines after restart');
    eq(texts(await lines(bob)), [...texts(beforeB), typed], 'bob\'s lines after restart');
    await say(alice, `after restart ${tag}`);
    await waitLine(bob, `after restart ${tag}`);
    await waitLine(alice, `after restart ${tag}`);
    await waitCount(alice, beforeA.length + 2);
    await waitCount(bob, beforeB.length + 2);
    eq(texts(await lines(bob)).slice(-2), [`typed while the server was down ${tag}`, `after restart ${tag}`], 'order after restart');
    for (const p of [alice, bob]) noDuplicates(await lines(p), p.__who);
    await say(bob, `still here ${tag}`);
    await waitLine(alice, `still here ${tag}`);
    await shot(alice, 'after-restart-desktop');
  });

  await test('deflate: Chromium negotiates permessage-deflate, and long lines go through compressed', async () => {
    // The handshake as Chromium saw it, through the DevTools protocol (every page of this run
    // negotiated it too: Chromium always offers it).
    const page = await (await newContext()).newPage();
    page.setDefaultTimeout(WAIT_MS);
    page.on('pageerror', (e) => pageErrors.push(`dee: ${e.message}`));
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('Network.enable');
    const handshakes = [];
    cdp.on('Network.webSocketWillSendHandshakeRequest', (e) => handshakes.push({ req: e.request.headers }));
    cdp.on('Network.webSocketHandshakeResponseReceived', (e) => handshakes.push({ res: e.response.headers, status: e.response.status }));
    await page.goto(base + '/');
    await login(page, 'dee');
    const header = (h, name) => Object.entries(h).find(([k]) => k.toLowerCase() === name)?.[1] || '';
    const req = handshakes.find((h) => h.req);
    const res = handshakes.find((h) => h.res);
    assert(req && /permessage-deflate/.test(header(req.req, 'sec-websocket-extensions')),
      `Chromium did not offer permessage-deflate: ${JSON.stringify(req)}`);
    assert(res && res.status === 101, `no 101 seen: ${JSON.stringify(handshakes)}`);
    eq(header(res.res, 'sec-websocket-extensions'),
      'permessage-deflate; server_no_context_takeover; client_no_context_takeover', 'negotiated extension');
    // Lines far over --deflate-min both ways (Chromium compresses what it sends too).
    const long = `a long line that compresses well, ${'again and again, '.repeat(40)}${tag}`;
    await say(page, long);
    await waitLine(alice, long);
    await waitLine(page, long);
    const reply = `and a long answer from alice, ${'over and over, '.repeat(40)}${tag}`;
    await say(alice, reply);
    await waitLine(page, reply);
    await page.close();
  });

  await test('e: a drain hands the pages to a new server on the same port (takeover, 1012)', async () => {
    const typed = `after takeover ${tag}`;
    const notes = (p, text) => p.locator('#log li.note', { hasText: text }).count();
    const before = [];
    for (const p of [alice, bob]) before.push([await notes(p, 'Server restarting'), await notes(p, 'Connection lost')]);
    const old = server;
    server = await startServer(port, TAKEOVER);   // listens beside the old one (SO_REUSEPORT)
    await stopServer(old);   // SIGTERM: the old one drains (close 1012 within 1 s) and exits
    for (const [i, p] of [alice, bob].entries()) {
      await until(p, (n) => [...document.querySelectorAll('#log li.note')]
        .filter((e) => e.textContent.includes('Server restarting')).length === n, before[i][0] + 1);
      await p.waitForSelector('body[data-state="online"]');   // back, on the new server
      eq(await notes(p, 'Connection lost'), before[i][1], 'a restart is not shown as a lost connection');
    }
    await say(alice, typed);
    await waitLine(bob, typed);
    await waitLine(alice, typed);
    for (const p of [alice, bob]) noDuplicates(await lines(p), p.__who);
  });

  await test('no uncaught errors in the pages', async () => { eq(pageErrors, [], 'page errors'); });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - setup: ${e && e.message || e}`);
}
if (failed && server) console.log(`--- server log (last lines) ---\n${server.log.slice(-30).join('\n')}`);
await cleanup();
clearTimeout(watchdog);
console.log(`browser: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
