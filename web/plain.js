// confab plain mode: the page for a script that does not speak scripts/chat.lua's protocol.
// Each frame the server sends is shown as a line; each line typed is sent as one text frame.
//
// How the chat page (app.js) learns what it is talking to (docs/hooks.md, "The page"):
//   - app.js calls confabPlain.watch(ws) on every socket it opens and confabPlain.helloSent(ws)
//     when it sends "hello". Nothing else in app.js knows about plain mode.
//   - Before the server's "welcome", every frame must be a JSON object whose "type" is one that
//     chat.lua sends. The first frame that is not (text that is not JSON, a binary frame, an echo
//     of our hello, another script's own JSON) switches the page to plain mode with that frame as
//     its first line.
//   - No "welcome" (nor an error) within WELCOME_MS of sending hello also switches: the script is
//     silent or speaks some other protocol.
//   - A WebSocket that does not open while the page itself loaded from the same server means the
//     server refuses the endpoint (another --ws-path, or a connect hook that refuses): the login
//     card says so after OPEN_FAILS failures and offers plain mode at a path the user types.
// plain.html opens plain mode directly: /plain.html?ws=/add connects to ws://HOST/add.
// Every received text goes into the page with textContent, never as markup.
'use strict';
(() => {
  const WELCOME_MS = 3000;
  const OPEN_FAILS = 2;             // failed opens before the page explains (about 1.5 s)
  const MAX_LINES = 2000;
  const RETRY_MS = 2000;
  // Every type scripts/chat.lua sends (README, "Server to client"): keep in step with it.
  const CHAT_TYPES = new Set(['welcome', 'error', 'info', 'message', 'history', 'members', 'joined',
    'left', 'renamed', 'dm', 'dm_history', 'typing', 'rooms', 'ok']);

  let active = false;               // plain mode owns the page
  let ui = null;
  let sock = null;                  // plain mode's socket
  let url = null;
  let failedOpens = 0;

  const wsBase = () => (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host;

  // Is this frame one that scripts/chat.lua could send before welcome?
  function chatFrame(data) {
    if (typeof data !== 'string') return false;
    let m;
    try { m = JSON.parse(data); } catch { return false; }
    return !!m && typeof m === 'object' && !Array.isArray(m) && CHAT_TYPES.has(m.type);
  }

  function describe(data) {
    if (typeof data === 'string') return data;
    const n = data.size !== undefined ? data.size : data.byteLength;
    return `[binary frame, ${n} bytes]`;
  }

  // ---- the plain-mode view, built on first use ----
  function h(tag, props, ...kids) {
    const e = document.createElement(tag);
    Object.assign(e, props || {});
    e.append(...kids);
    return e;
  }

  // plain.css, added to the chat page on first use.
  function styles() {
    if (!document.querySelector('link[href="plain.css"]')) {
      document.head.appendChild(h('link', { rel: 'stylesheet', href: 'plain.css' }));
    }
  }

  function build() {
    if (ui) return ui;
    styles();
    const why = h('p', { id: 'plain-why', className: 'plain-why' });
    const status = h('span', { id: 'plain-status', className: 'plain-status', role: 'status' });
    const reconnect = h('button', { type: 'button', id: 'plain-reconnect', hidden: true, textContent: 'Reconnect' });
    const log = h('ol', { id: 'plain-log', className: 'plain-log', tabIndex: 0 });
    log.setAttribute('role', 'log');
    log.setAttribute('aria-live', 'polite');
    log.setAttribute('aria-label', 'Frames');
    const input = h('input', { id: 'plain-input', autocomplete: 'off', spellcheck: false,
      placeholder: 'A line to send as one text frame' });
    input.setAttribute('aria-label', 'Text to send');
    const send = h('button', { type: 'submit', id: 'plain-send', textContent: 'Send' });
    const form = h('form', { id: 'plain-form', className: 'plain-form' }, input, send);
    const where = h('code', { id: 'plain-where' });
    const head = h('header', { className: 'plain-head' },
      h('h1', { textContent: 'confab · plain mode' }), where, status, reconnect);
    const root = h('main', { id: 'plain', className: 'plain' }, head, why, log, form);
    root.setAttribute('aria-labelledby', 'plain-title');
    head.firstChild.id = 'plain-title';
    document.body.appendChild(root);
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!input.value || !sock || sock.readyState !== WebSocket.OPEN) return;
      sock.send(input.value);
      line(input.value, 'out');
      input.value = '';
    });
    reconnect.addEventListener('click', () => open(url));
    ui = { root, why, status, reconnect, log, input, where };
    return ui;
  }

  // Appends a line: 'in' (received), 'out' (sent), or 'note' (about the connection).
  function line(text, kind) {
    const u = build();
    const atEnd = u.log.scrollTop > u.log.scrollHeight - u.log.clientHeight - 2;
    const li = h('li', { className: `plain-${kind}` });
    if (kind !== 'note') li.appendChild(h('span', { className: 'plain-dir', textContent: kind === 'in' ? '←' : '→' }));
    li.appendChild(h('span', { className: 'plain-text', textContent: text }));
    u.log.appendChild(li);
    while (u.log.childElementCount > MAX_LINES) u.log.firstElementChild.remove();
    if (atEnd) u.log.scrollTop = u.log.scrollHeight;
  }

  function setStatus(text, state) {
    const u = build();
    u.status.textContent = text;
    document.body.dataset.plain = state;
  }

  // Shows plain mode in place of the chat page, with the reason.
  function show(reason) {
    const u = build();
    active = true;
    for (const id of ['login', 'app']) {
      const e = document.getElementById(id);
      if (e) e.hidden = true;
    }
    document.body.dataset.state = 'plain';
    document.title = 'confab · plain mode';
    u.why.textContent = reason;
    u.input.focus();
  }

  // Plain mode's own socket handlers.
  function adopt(ws) {
    sock = ws;
    url = ws.url;
    build().where.textContent = url;
    ui.reconnect.hidden = true;
    ws.onopen = () => { setStatus('connected', 'open'); };
    ws.onmessage = (e) => line(describe(e.data), 'in');
    ws.onerror = null;
    ws.onclose = (e) => {
      if (ws !== sock) return;
      setStatus(`closed (${e.code}${e.reason ? `: ${e.reason}` : ''})`, 'closed');
      line(`Connection closed (${e.code}${e.reason ? `: ${e.reason}` : ''}).`, 'note');
      ui.reconnect.hidden = false;
    };
    if (ws.readyState === WebSocket.OPEN) setStatus('connected', 'open');
    else setStatus('connecting…', 'connecting');
  }

  function open(target) {
    if (sock && sock.readyState <= WebSocket.OPEN) { const old = sock; sock = null; old.close(1000); }
    let ws;
    try { ws = new WebSocket(target); } catch (err) { line(`Bad address ${target}: ${err.message}`, 'note'); return; }
    adopt(ws);
    const timer = setTimeout(() => {
      if (ws === sock && ws.readyState === WebSocket.CONNECTING) line(`Still trying to reach ${target}…`, 'note');
    }, WELCOME_MS);
    ws.addEventListener('open', () => clearTimeout(timer));
    ws.addEventListener('close', () => clearTimeout(timer));
  }

  // Takes over a socket app.js opened: app.js's handlers go, plain mode's come.
  function takeOver(ws, reason, first, sent) {
    if (active) return;
    show(reason);
    adopt(ws);
    if (sent) line(sent, 'out');
    if (first !== undefined) line(describe(first), 'in');
  }

  // ---- when the page cannot open the WebSocket at all ----
  function offer() {
    const card = document.getElementById('login-form');
    if (!card || document.getElementById('plain-offer')) return;
    styles();
    const path = h('input', { id: 'plain-path', value: new URL(wsURLOf()).pathname, spellcheck: false });
    path.setAttribute('aria-label', 'WebSocket path');
    const go = h('button', { type: 'button', id: 'plain-open', textContent: 'Open plain mode' });
    const text = h('p', { id: 'plain-offer-text', className: 'error' });
    const box = h('div', { id: 'plain-offer', className: 'plain-offer' }, text,
      h('div', { className: 'plain-offer-row' }, path, go));
    card.appendChild(box);
    go.addEventListener('click', () => {
      const p = path.value.trim() || '/ws';
      show(`Plain mode at ${p}: each frame from the server is a line; each line you send is one text frame.`);
      open(wsBase() + (p.startsWith('/') ? p : `/${p}`));
    });
    // Is it the server that is gone, or only its WebSocket endpoint?
    fetch(location.href, { method: 'HEAD', cache: 'no-store' }).then((r) => {
      text.textContent = r.ok
        ? `The server answers but refuses WebSocket connections at ${wsURLOf()}. The script running ` +
          'may use another path (--ws-path) or refuse connections in its connect hook. Try plain mode at another path:'
        : `The server answers HTTP ${r.status} and refuses WebSocket connections at ${wsURLOf()}.`;
    }, () => {
      text.textContent = 'The server is not reachable (it may have stopped); the page keeps retrying.';
    });
  }
  let lastURL = null;
  const wsURLOf = () => lastURL || `${wsBase()}/ws`;

  // Per socket of app.js: whether the server answered like chat.lua, and the hello we sent.
  const watched = new WeakMap();

  window.confabPlain = {
    // Called by app.js with each socket it opens.
    watch(ws) {
      lastURL = ws.url;
      if (active) {        // plain mode owns the page: the chat page's socket is not wanted
        ws.onopen = ws.onmessage = ws.onclose = null;
        ws.close();
        return;
      }
      const st = { opened: false, welcomed: false, answered: false, hello: undefined };
      watched.set(ws, st);
      ws.addEventListener('open', () => {
        st.opened = true;
        failedOpens = 0;
        const box = document.getElementById('plain-offer');
        if (box) box.remove();
      });
      ws.addEventListener('message', (e) => {
        if (st.welcomed || active) return;
        if (chatFrame(e.data)) {
          st.answered = true;
          if (JSON.parse(e.data).type === 'welcome') st.welcomed = true;
          return;
        }
        takeOver(ws, 'This server\'s script does not speak the chat protocol of scripts/chat.lua, ' +
          'so this page shows each frame it sends as a line (←) and sends each line you type as ' +
          'one text frame (→).', e.data, st.hello);
      });
      ws.addEventListener('close', () => {
        if (active || st.opened) return;
        if (++failedOpens >= OPEN_FAILS) offer();
      });
    },

    // Called by app.js right after it sent hello (the text sent) on ws.
    helloSent(ws, text) {
      const st = ws && watched.get(ws);
      if (!st) return;
      st.hello = text;
      st.answered = false;
      setTimeout(() => {
        if (active || st.answered || st.welcomed || ws.readyState !== WebSocket.OPEN) return;
        takeOver(ws, `The server did not answer the chat's hello within ${WELCOME_MS / 1000} s: its ` +
          'script does not speak the chat protocol of scripts/chat.lua. This page now shows each frame ' +
          'it sends as a line (←) and sends each line you type as one text frame (→).', undefined, text);
      }, WELCOME_MS);
    },

    // plain.html: plain mode from the start, at ?ws=PATH (default /ws).
    start() {
      const p = new URLSearchParams(location.search).get('ws') || '/ws';
      show('Plain mode: each frame from the server is a line (←); each line you send is one text frame (→).');
      open(wsBase() + (p.startsWith('/') ? p : `/${p}`));
    },
  };
})();
