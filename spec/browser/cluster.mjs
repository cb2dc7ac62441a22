// Browser test of the chat on two confab nodes sharing one Redis (issue 8): Debian's Chromium
// driven by playwright-core, launched as in run.mjs. Two pages served by two different nodes chat;
// then one page's node is SIGKILLed and the page reconnects to the other node and resumes without
// a duplicated or missing line.
//
// How the page finds the other node: as behind a load balancer. The page keeps connecting to the
// host it was served from (web/app.js is unchanged); that host is a small TCP failover relay in
// front of node A with node B as its backup (what HAProxy's `backup` server does): once A is gone,
// new connections go to B.
//
// Env: CONFAB_BIN (default build/confab), CHROMIUM (/usr/bin/chromium), REDIS_SERVER
// (/usr/bin/redis-server). Last line: "cluster: N passed, N failed"; skipped (0 passed) when the
// binary has no --redis.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = process.env.CONFAB_BIN || path.join(root, 'build', 'confab');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const REDIS = process.env.REDIS_SERVER || '/usr/bin/redis-server';
const WAIT_MS = 15000;          // upper bound for any one awaited DOM state
const WATCHDOG_MS = 180000;     // upper bound for the whole run
const NODE_FLAGS = (process.env.CONFAB_NODE_FLAGS || '').split(/\s+/).filter(Boolean);

let passed = 0;
let failed = 0;
let browser = null;
const procs = [];               // every process started here: {proc, log[], name}
const relays = [];
const pageErrors = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-cluster-'));

// ---- processes ----

// Spawns cmd and resolves with {proc, log, match} once a line of its output matches re (10 s).
function startProc(name, cmd, args, re, stream) {
  return new Promise((resolve, reject) => {
    const proc = spawn(cmd, args, { cwd: root, stdio: ['ignore', stream === 'stdout' ? 'pipe' : 'ignore', stream === 'stdout' ? 'ignore' : 'pipe'] });
    const p = { proc, log: [], name };
    procs.push(p);
    let buf = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`${name} did not start in 10 s:\n${p.log.join('\n')}`)), 10000);
    function finish(err, m) {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err); else resolve(Object.assign(p, { match: m }));
    }
    const out = stream === 'stdout' ? proc.stdout : proc.stderr;
    out.setEncoding('utf8');
    out.on('data', (chunk) => {
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        p.log.push(line);
        if (p.log.length > 300) p.log.shift();
        const m = re.exec(line);
        if (m) finish(null, m);
      }
    });
    proc.on('error', (e) => finish(new Error(`cannot start ${cmd}: ${e.message}`)));
    proc.on('exit', (code, sig) => finish(new Error(`${name} exited (${code ?? sig}) before it was ready:\n${p.log.join('\n')}`)));
  });
}

// Sends sig to the process by its PID and resolves once it has exited.
function stopProc(p, sig = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) { resolve(); return; }
    const t = setTimeout(() => { try { process.kill(p.proc.pid, 'SIGKILL'); } catch { /* gone */ } }, 3000);
    p.proc.once('exit', () => { clearTimeout(t); resolve(); });
    try { process.kill(p.proc.pid, sig); } catch { clearTimeout(t); resolve(); }
  });
}

function startRedis() {
  const sock = path.join(tmp, 'redis.sock');
  return startProc('redis', REDIS, ['--port', '0', '--unixsocket', sock, '--unixsocketperm', '700',
    '--dir', tmp, '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''],
  /ready to accept connections/i, 'stdout').then((p) => Object.assign(p, { url: `unix:${sock}` }));
}

async function startNode(name, redis) {
  const p = await startProc(name, BIN, ['--addr', '127.0.0.1:0', '--script', 'scripts/chat.lua', '--web', 'web',
    '--redis', redis.url, ...NODE_FLAGS], /listening on (?:\[[^\]]*\]|[^\s:]+):(\d+)/, 'stderr');
  p.port = Number(p.match[1]);
  return p;
}

// A TCP relay that connects each new connection to the first of `targets` (ports) that accepts
// it: a load balancer with a primary and a backup.
function startRelay(targets) {
  const socks = new Set();
  const srv = net.createServer((c) => {
    socks.add(c);
    c.on('close', () => socks.delete(c));
    c.on('error', () => {});
    c.pause();
    const attempt = (k) => {
      if (k >= targets.length) { c.destroy(); return; }
      const u = net.connect(targets[k], '127.0.0.1');
      u.once('error', () => { u.destroy(); attempt(k + 1); });
      u.once('connect', () => {
        u.removeAllListeners('error');
        socks.add(u);
        u.on('error', () => c.destroy());
        c.on('error', () => u.destroy());
        u.on('close', () => { socks.delete(u); c.destroy(); });
        c.on('close', () => u.destroy());
        c.pipe(u); u.pipe(c);
        c.resume();
      });
    };
    attempt(0);
  });
  const r = { srv, port: 0, close() { for (const s of socks) s.destroy(); srv.close(); } };
  relays.push(r);
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => { r.port = srv.address().port; resolve(r); });
  });
}

// ---- tiny test harness (as in run.mjs) ----
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
async function openPage(base) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await ctx.newPage();
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
function until(page, fn, arg) {
  return page.waitForFunction(fn, arg, { polling: 20 });
}
function waitLine(page, text) {
  return until(page, (t) => [...document.querySelectorAll('#log li.msg:not(.pending) .text')].some((e) => e.textContent === t), text);
}
function lines(page) {
  return page.$$eval('#log li.msg:not(.pending)', (els) => els.map((e) => ({
    key: `${e.dataset.epoch}:${e.dataset.room}:${e.dataset.id}`,
    from: e.querySelector('.from').textContent,
    text: e.querySelector('.text').textContent,
  })));
}
async function waitCount(page, n) {
  await until(page, (k) => document.querySelectorAll('#log li.msg:not(.pending)').length === k, n)
    .catch(async () => { throw new Error(`expected ${n} lines, have ${JSON.stringify((await lines(page)).map((l) => l.text))}`); });
}
function noDuplicates(ls, who) {
  const keys = ls.map((l) => l.key);
  eq(keys.filter((k, i) => keys.indexOf(k) !== i), [], `${who} shows duplicated lines`);
}

// ---- cleanup, in every case ----
let cleaned = false;
async function cleanup() {
  if (cleaned) return;
  cleaned = true;
  for (const r of relays) r.close();
  if (browser) await browser.close().catch(() => {});
  for (const p of procs.slice().reverse()) await stopProc(p);
  fs.rmSync(tmp, { recursive: true, force: true });
}
process.on('exit', () => {
  for (const p of procs) {
    if (p.proc.exitCode === null && p.proc.signalCode === null) {
      try { process.kill(p.proc.pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, async () => { await cleanup(); process.exit(130); });
const watchdog = setTimeout(async () => {
  console.log(`not ok - the run took longer than ${WATCHDOG_MS / 1000} s`);
  failed++;
  await cleanup();
  console.log(`cluster: ${passed} passed, ${failed} failed`);
  process.exit(1);
}, WATCHDOG_MS);

// ---- the tests ----
async function main() {
  const help = spawnSync(BIN, ['--help'], { encoding: 'utf8' });
  if (!/--redis/.test((help.stdout || '') + (help.stderr || ''))) {
    console.log('skip - this confab has no --redis');
    return;
  }
  const redis = await startRedis();
  const a = await startNode('node A', redis);
  const b = await startNode('node B', redis);
  const relay = await startRelay([a.port, b.port]);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const tag = Date.now().toString(36);
  const alice = await openPage(`http://127.0.0.1:${relay.port}`);   // node A (B as backup)
  const bob = await openPage(`http://127.0.0.1:${b.port}`);         // node B

  await test('two pages on two nodes chat with each other', async () => {
    await login(alice, 'alice');
    await login(bob, 'bob');
    await say(alice, `from A ${tag}`);
    await waitLine(bob, `from A ${tag}`);
    await waitLine(alice, `from A ${tag}`);
    await say(bob, `from B ${tag}`);
    await waitLine(alice, `from B ${tag}`);
    const la = await lines(alice);
    const lb = await lines(bob);
    eq(la.map((l) => l.key + ' ' + l.text), lb.map((l) => l.key + ' ' + l.text), 'same lines, same ids');
  });

  await test('node A is killed: its page reconnects to node B and resumes with no line missing or twice', async () => {
    const before = await lines(alice);
    assert(before.length >= 2, 'alice has lines');
    await stopProc(a, 'SIGKILL');
    await alice.waitForSelector('body[data-state="offline"]');
    for (let i = 1; i <= 3; i++) await say(bob, `while A is gone ${i} ${tag}`);
    await waitLine(bob, `while A is gone 3 ${tag}`);
    await say(alice, `typed by alice offline ${tag}`);
    await alice.waitForSelector('body[data-state="online"]');   // through the relay: node B
    await waitLine(alice, `while A is gone 3 ${tag}`);
    await waitLine(bob, `typed by alice offline ${tag}`);
    await waitLine(alice, `typed by alice offline ${tag}`);
    eq(await alice.locator('#log li.pending').count(), 0, 'alice\'s pending line acknowledged');
    const lb = await lines(bob);
    await waitCount(alice, lb.length);
    const la = await lines(alice);
    noDuplicates(la, 'alice');
    eq(la.map((l) => l.key + ' ' + l.text), lb.map((l) => l.key + ' ' + l.text), 'alice\'s lobby equals bob\'s');
    eq(la.slice(0, before.length), before, 'the lines before the crash are kept as they were');
    await say(bob, `after failover ${tag}`);
    await waitLine(alice, `after failover ${tag}`);
  });

  await test('no uncaught errors in the pages', async () => { eq(pageErrors, [], 'page errors'); });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - setup: ${e && e.message || e}`);
}
if (failed) for (const p of procs) console.log(`--- ${p.name} log (last lines) ---\n${p.log.slice(-25).join('\n')}`);
await cleanup();
clearTimeout(watchdog);
console.log(`cluster: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
