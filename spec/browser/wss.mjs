// Browser test of TLS: the real confab server with a plain listener and a TLS one (a self-signed
// certificate made with the openssl command in a temporary directory), Debian's Chromium driven by
// playwright-core with --ignore-certificate-errors. The page loads over https://, its chat goes
// over wss://, and it chats with a page on the plain listener of the same server.
//   node spec/browser/wss.mjs
// Env: CONFAB_BIN (default build/confab of this repository), CHROMIUM (default /usr/bin/chromium).
// Last line: "wss: N passed, N failed"; exit status 1 on any failure.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '..', '..');
const BIN = path.resolve(root, process.env.CONFAB_BIN || path.join('build', 'confab'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const WAIT_MS = 10000;          // upper bound for any one awaited DOM state
const WATCHDOG_MS = 120000;     // upper bound for the whole run

let passed = 0;
let failed = 0;
let server = null;              // {proc, ports: {plain, tls}, log[]}
let browser = null;
let tmp = null;
const pageErrors = [];

// Starts confab with a plain listener and a TLS one on 127.0.0.1; resolves with {proc, ports, log}
// once both "listening on" lines are there.
function startServer(cert, key) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--addr', '127.0.0.1:0', '--tls-addr', '127.0.0.1:0', '--tls-cert', cert,
      '--tls-key', key, '--script', 'scripts/chat.lua', '--web', 'web'],
    { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
    const log = [];
    const ports = {};
    let buf = '';
    let done = false;
    const timer = setTimeout(() => finish(new Error(`server did not report both listeners in 10 s:\n${log.join('\n')}`)), 10000);
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
        const m = /listening on 127\.0\.0\.1:(\d+)( \(TLS\))?$/.exec(line);
        if (m) ports[m[2] ? 'tls' : 'plain'] = Number(m[1]);
        if (ports.tls && ports.plain) finish(null, { proc, ports, log });
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

// Opens the page at url; records the WebSocket URLs it opens (page.sockets).
async function openPage(url) {
  const page = await (await browser.newContext()).newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  page.on('pageerror', (e) => pageErrors.push(e.message));
  const resp = await page.goto(url);
  page.status = resp.status();
  return page;
}

async function login(page, name) {
  await page.locator('#login-name').fill(name);
  await page.locator('#login-button').click();
  await page.waitForSelector('body[data-state="online"]');
}

async function say(page, text) {
  await page.locator('#input').fill(text);
  await page.locator('#input').press('Enter');
}

function waitLine(page, text) {
  return page.waitForFunction((t) => [...document.querySelectorAll('#log li.msg .text')]
    .some((e) => e.textContent === t), text, { polling: 20 });
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  browser = null;
  if (server) await stopServer(server);
  server = null;
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  tmp = null;
}
const watchdog = setTimeout(async () => {
  console.log(`not ok - the run took longer than ${WATCHDOG_MS / 1000} s`);
  failed++;
  await cleanup();
  console.log(`wss: ${passed} passed, ${failed} failed`);
  process.exit(1);
}, WATCHDOG_MS);

async function main() {
  if (!fs.existsSync(BIN)) throw new Error(`no server binary at ${BIN} (run make)`);
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'confab-wss-'));
  const cert = path.join(tmp, 'cert.pem');
  const key = path.join(tmp, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1',
    '-keyout', key, '-out', cert], { stdio: 'ignore' });
  server = await startServer(cert, key);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--ignore-certificate-errors'],
  });
  const tag = Date.now().toString(36);
  const httpsBase = `https://127.0.0.1:${server.ports.tls}`;

  await test('the page loads over https and chats over wss with a page on the plain listener', async () => {
    const sec = await openPage(`${httpsBase}/`);
    const plain = await openPage(`http://127.0.0.1:${server.ports.plain}/`);
    eq(sec.status, 200, 'status of the https page');
    eq(await sec.evaluate(() => location.protocol), 'https:', 'the page\'s protocol');
    await login(sec, 'tess');
    await login(plain, 'pete');
    eq(sec.sockets, [`wss://127.0.0.1:${server.ports.tls}/ws`], 'the https page\'s WebSocket');
    eq(plain.sockets, [`ws://127.0.0.1:${server.ports.plain}/ws`], 'the plain page\'s WebSocket');
    await say(sec, `over wss ${tag}`);
    await waitLine(plain, `over wss ${tag}`);
    await say(plain, `over ws ${tag}`);
    await waitLine(sec, `over ws ${tag}`);
    // The https page's own origin is accepted (no --allow-origin needed).
    eq(await sec.evaluate(() => document.body.dataset.state), 'online', 'still online');
  });

  await test('the https page reconnects over wss after a reload', async () => {
    const sec = await openPage(`${httpsBase}/`);
    await login(sec, 'tom');
    await sec.reload();
    await sec.waitForSelector('body[data-state="online"]');
    await say(sec, `after reload ${tag}`);
    await waitLine(sec, `after reload ${tag}`);
    eq(sec.sockets.every((u) => u.startsWith('wss://')), true, `sockets ${JSON.stringify(sec.sockets)}`);
  });

  await test('no uncaught errors in the pages; no failed TLS handshakes logged', async () => {
    eq(pageErrors, [], 'page errors');
    eq(server.log.filter((l) => /TLS handshake/.test(l)), [], 'handshake failures');
  });
}

try {
  await main();
} catch (e) {
  failed++;
  console.log(`not ok - setup\n  ${String(e && e.stack || e).split('\n').slice(0, 6).join('\n  ')}`);
  if (server) console.log(server.log.slice(-20).join('\n'));
}
await cleanup();
clearTimeout(watchdog);
console.log(`wss: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
