// confab chat page: speaks the protocol in README.md over one WebSocket.
// Every piece of text that came from the network is put into the page with textContent or
// createTextNode, never as markup, and every user-supplied string (names, room names, texts) is
// isolated for bidi (<bdi> or dir=auto), so a right-to-left name cannot reorder the line around it.
// What the user types goes through an outbox: kept (also across a reload) until the server
// acknowledges it by its cid, and paced below the server's flood limit.
'use strict';
(() => {
  const $ = (id) => document.getElementById(id);
  const el = {
    body: document.body, login: $('login'), loginForm: $('login-form'), loginName: $('login-name'),
    loginError: $('login-error'), loginButton: $('login-button'), loginStatus: $('login-status'),
    app: $('app'), banner: $('banner'), bannerText: $('banner-text'), bannerRetry: $('banner-retry'),
    sidebar: $('sidebar'), scrim: $('scrim'), meName: $('me-name'), roomList: $('room-list'),
    joinForm: $('join-form'), joinName: $('join-name'), dmSection: $('dm-section'), dmList: $('dm-list'),
    membersSection: $('members-section'), membersTitle: $('members-title'), memberList: $('member-list'),
    menuButton: $('menu-button'), menuUnread: $('menu-unread'), viewTitle: $('view-title'),
    viewSub: $('view-sub'), leaveButton: $('leave-button'), log: $('log'), newMessages: $('new-messages'),
    typing: $('typing'), composer: $('composer'), input: $('input'), send: $('send'),
    outboxStatus: $('outbox-status'), composerError: $('composer-error'), empty: $('empty'),
    emptyJoin: $('empty-join'), notify: $('notify'), loginHint: $('login-hint'),
  };

  const RETRY_MIN_MS = 500;         // first reconnect delay; doubles per failed attempt
  const RETRY_MAX_MS = 10000;
  const RESTART_SPREAD_MS = 5000;   // after close 1012/1001 (server restart): back within 0.5-5 s
  const TYPING_SEND_MS = 3000;      // send at most one "typing" per room this often
  const TYPING_SHOW_MS = 6000;      // how long a "typing" notice lasts without a refresh
  const NAME_TAKEN_RETRIES = 6;     // our previous connection may still hold the name for a moment
  const MAX_ITEMS = 2000;           // lines kept per view
  const STORE_KEY = 'confab.session';      // sessionStorage: this tab's name, rooms, view
  const OUTBOX_KEY = 'confab.outbox';      // sessionStorage: what was typed and not yet accepted
  const KEY_KEY = 'confab.key';            // localStorage: this browser's secret key (see README)
  const READ_KEY = 'confab.read:';         // localStorage + name: last read id per room / DM pair
  const NOTIFY_KEY = 'confab.notify';      // localStorage: "1" when the user opted in
  const NAME_MAX = 24;              // the server's limits, checked here to say so early
  const ROOM_MAX = 32;
  const TEXT_MAX = 2000;
  // The server allows 5 messages per second with bursts of 10 per connection; the outbox stays
  // below that, so a flood refusal is the exception (it is retried after a pause, never shown).
  const SEND_BURST = 8;
  const SEND_RATE = 4.5;            // per second
  // One message in flight at a time: the server answers each in order, so a refused one (a flood
  // refusal after all, say) is sent again before anything typed after it. Costs a round trip per
  // line, which the pacing hides below about 200 ms.
  const IN_FLIGHT = 1;
  const FLOOD_PAUSE_MS = 1000;
  const GROUP_MS = 5 * 60 * 1000;   // consecutive lines of one person within this are grouped

  // The whole client state. Rooms and DM conversations are "views"; each has an ordered list
  // of items: messages ({kind:'msg'}) and local notes ({kind:'note'}).
  const S = {
    ws: null,
    welcomed: false,        // welcome received on the current socket
    everWelcomed: false,
    autoHello: false,       // send hello on every open (we have a session to keep)
    wantName: null,
    name: null,
    epoch: null,            // epoch of the server run our message ids belong to
    rooms: new Map(),       // room name -> room
    dms: new Map(),         // peer name -> conversation
    view: null,             // {kind: 'room'|'dm', name}
    lastRoom: null,
    pendingSwitch: null,    // room we asked to join and want to look at when joined
    attempt: 0,
    retryTimer: 0,
    retryAt: 0,
    tickTimer: 0,
    takenRetries: 0,
    lastTypingSent: new Map(),
    typingTimer: 0,
    rejoinTimer: 0,
    uid: null,              // our user id (from welcome): DM pairs are "A-B" of uids
    replaced: false,        // the server closed us because this user connected elsewhere
    outbox: [],             // {cid, msg, view: {kind, name} | null, state: 'queued'|'sent'|'failed', error}
    tokens: SEND_BURST,
    tokensAt: 0,
    pauseUntil: 0,
    pumpTimer: 0,
    syncCid: null,          // cid of our hello: its "ok" ends the resume, then the outbox may send
    read: { epoch: null, rooms: {}, dms: {} },
    flashTimer: 0,
    flashCount: 0,
  };

  // ---- persistence across reloads (per tab) ----
  function loadStored() {
    try { return JSON.parse(sessionStorage.getItem(STORE_KEY)) || {}; } catch { return {}; }
  }
  function save() {
    try {
      sessionStorage.setItem(STORE_KEY, JSON.stringify({
        name: S.name, epoch: S.epoch, rooms: [...S.rooms.keys()],
        view: S.view && S.view.kind === 'room' ? S.view.name : S.lastRoom,
      }));
    } catch { /* storage may be unavailable; the session just won't survive a reload */ }
  }
  const stored = loadStored();

  // A random secret that makes this browser's user the owner of its name's direct messages and
  // lets it reconnect quietly (see README: keys). Kept per browser, shared by its tabs.
  function browserKey() {
    let k = null;
    try { k = localStorage.getItem(KEY_KEY); } catch { /* no storage: a key per page */ }
    if (!k || !/^[A-Za-z0-9_-]{16,60}$/.test(k)) {
      const b = new Uint8Array(24);
      crypto.getRandomValues(b);
      k = btoa(String.fromCharCode(...b)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
      try { localStorage.setItem(KEY_KEY, k); } catch { /* see above */ }
    }
    return k;
  }
  const KEY = browserKey();

  const CID_PREFIX = (() => {
    const b = new Uint8Array(6);
    crypto.getRandomValues(b);
    return [...b].map((x) => x.toString(36).padStart(2, '0')).join('').slice(0, 10);
  })();
  let cidCounter = 0;
  const newCid = () => `${CID_PREFIX}-${(++cidCounter).toString(36)}`;

  function saveOutbox() {
    try {
      sessionStorage.setItem(OUTBOX_KEY, JSON.stringify(S.outbox.map((o) => ({ cid: o.cid, msg: o.msg, view: o.view, state: o.state === 'failed' ? 'failed' : 'queued', error: o.error }))));
    } catch { /* see save() */ }
  }
  try {
    const box = JSON.parse(sessionStorage.getItem(OUTBOX_KEY));
    if (Array.isArray(box)) {
      S.outbox = box.filter((o) => o && typeof o.cid === 'string' && o.msg && typeof o.msg.type === 'string')
        .map((o) => ({ cid: o.cid, msg: o.msg, view: o.view || null, state: o.state === 'failed' ? 'failed' : 'queued', error: o.error || '' }));
    }
  } catch { /* nothing kept */ }

  // What was read: the last message id per room and per DM pair, per user name, for this server
  // run (ids of another run mean nothing).
  function loadRead() {
    try {
      const r = JSON.parse(localStorage.getItem(READ_KEY + S.name));
      if (r && r.epoch === S.epoch && r.rooms && r.dms) return r;
    } catch { /* start afresh */ }
    return { epoch: S.epoch, rooms: {}, dms: {} };
  }
  function saveRead() {
    try { localStorage.setItem(READ_KEY + S.name, JSON.stringify(S.read)); } catch { /* see save() */ }
  }
  const readOf = (v) => (v.kind === 'room' ? S.read.rooms[v.name] : (v.pair ? S.read.dms[v.pair] : 0)) || 0;
  // The reader sees `v` now: everything in it is read.
  function markRead(v) {
    if (!v || document.hidden) return;
    v.unread = 0;
    if (v.kind === 'room') {
      if ((S.read.rooms[v.name] || 0) < v.lastId) { S.read.rooms[v.name] = v.lastId; saveRead(); }
    } else if (v.pair && (S.read.dms[v.pair] || 0) < v.lastId) {
      S.read.dms[v.pair] = v.lastId;
      saveRead();
    }
  }
  // Unread = lines of others above the last read id.
  function recount(v) {
    if (isCurrent(v) && !document.hidden) { markRead(v); return; }
    const last = readOf(v);
    v.unread = v.items.filter((it) => it.kind === 'msg' && !it.archived && it.id > last && it.from !== S.name).length;
  }

  // ---- model ----
  function ensureRoom(name) {
    let r = S.rooms.get(name);
    if (!r) {
      r = { kind: 'room', name, items: [], byId: new Map(), lastId: 0, unread: 0, members: [],
            typers: new Map(), confirmed: true, divider: null };
      S.rooms.set(name, r);
    }
    return r;
  }
  function ensureDm(peer) {
    let c = S.dms.get(peer);
    if (!c) {
      c = { kind: 'dm', name: peer, pair: null, items: [], byId: new Map(), lastId: 0, unread: 0, divider: null };
      S.dms.set(peer, c);
    }
    return c;
  }
  function currentModel() {
    if (!S.view) return null;
    return S.view.kind === 'room' ? S.rooms.get(S.view.name) : S.dms.get(S.view.name);
  }
  const isCurrent = (m) => m && m === currentModel();

  function trim(v) {
    if (v.items.length <= MAX_ITEMS) return;
    const cut = v.items.splice(0, v.items.length - MAX_ITEMS + 200);
    if (v.byId) for (const it of cut) if (it.kind === 'msg' && !it.archived) v.byId.delete(it.id);
    if (isCurrent(v)) renderView(false);
  }

  // Puts a room message in id order; returns true if it went at the end.
  function insertMsg(r, it) {
    r.byId.set(it.id, it);
    if (it.id > r.lastId) { r.lastId = it.id; r.items.push(it); return true; }
    let i = r.items.length;
    while (i > 0) {
      const p = r.items[i - 1];
      if (p.kind === 'msg' && !p.archived && p.id < it.id) break;
      if (p.kind === 'msg' && p.archived) break;
      i--;
    }
    r.items.splice(i, 0, it);
    return i === r.items.length - 1;
  }

  function msgItem(m) {
    return { kind: 'msg', room: m.room, id: m.id, ts: m.ts, from: String(m.from),
             text: String(m.text), action: m.kind === 'me', epoch: S.epoch, archived: false };
  }
  function dmItem(m) {
    return { kind: 'msg', dm: true, id: typeof m.id === 'number' ? m.id : 0, ts: m.ts, from: String(m.from),
             to: String(m.to), text: String(m.text), action: false, epoch: S.epoch, archived: false };
  }
  // The other person of a DM frame.
  const peerOf = (m) => (String(m.from) === S.name ? String(m.to) : String(m.from));

  // `text` is a string or an array of parts: strings, and {name} for a user-supplied name.
  function note(v, text, cls, openDm) {
    if (!v) return null;
    const it = { kind: 'note', text, cls: cls || '', ts: Date.now(), openDm };
    v.items.push(it);
    if (isCurrent(v)) appendToLog(it, false);
    trim(v);
    return it;
  }
  // A note in the view the reader has open; with none open (after leaving every room) it goes
  // under the input instead.
  function noteHere(text, cls, openDm) {
    const v = currentModel() || S.rooms.get(S.lastRoom);
    if (v) return note(v, text, cls, openDm);
    if (cls !== 'dm') composerError(partsText(text));
    return null;
  }

  // ---- network ----
  function wsURL() {
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  function connect() {
    clearTimeout(S.retryTimer);
    S.retryTimer = 0;
    if (S.ws) return;
    setState(S.everWelcomed ? 'connecting' : 'login');
    let ws;
    try { ws = new WebSocket(wsURL()); } catch { scheduleReconnect(); return; }
    S.ws = ws;
    ws.onopen = () => { if (ws === S.ws) onOpen(); };
    ws.onmessage = (e) => { if (ws === S.ws) onFrame(e.data); };
    ws.onclose = (e) => { if (ws === S.ws) onClose(e.code); };
    window.confabPlain?.watch(ws);   // plain.js: plain mode for scripts that are not chat.lua
  }

  function send(obj) {
    if (!S.ws || S.ws.readyState !== WebSocket.OPEN) return false;
    S.ws.send(JSON.stringify(obj));
    return true;
  }

  function onOpen() {
    el.loginButton.disabled = false;
    if (S.autoHello && S.wantName) sendHello();
    else loginStatus('');
  }

  function sendHello() {
    S.syncCid = newCid();
    const msg = { type: 'hello', name: S.wantName, key: KEY, cid: S.syncCid };
    const rooms = {};
    for (const r of S.rooms.values()) rooms[r.name] = r.lastId;
    const dms = {};
    for (const c of S.dms.values()) if (c.pair && c.lastId) dms[c.pair] = c.lastId;
    let epoch = S.epoch;
    if (!Object.keys(rooms).length && Array.isArray(stored.rooms)) {
      // Fresh page with a stored session: ask for every room's full history again.
      for (const n of stored.rooms) if (typeof n === 'string') rooms[n] = 0;
      epoch = stored.epoch;
    }
    if (Object.keys(rooms).length) msg.resume = { epoch: Number(epoch) || 0, rooms, dms };
    if (!S.everWelcomed) loginStatus(`Signing in as ${S.wantName}…`);
    if (send(msg)) window.confabPlain?.helloSent(S.ws, JSON.stringify(msg));
  }

  function onClose(code) {
    S.ws = null;
    const was = S.welcomed;
    S.welcomed = false;
    for (const o of S.outbox) if (o.state === 'sent') o.state = 'queued';
    if (code === 4000) {
      // This user signed in from another tab or window: reconnecting would take it back from
      // there, and that one would take it back again. Wait for the user to ask.
      S.replaced = true;
      setState('offline');
      el.bannerText.textContent = 'You opened the chat in another tab or window.';
      el.bannerRetry.textContent = 'Use it here';
      return;
    }
    // 1012 (service restart) and 1001 (going away): the server is restarting or draining.
    // Every client got it within the server's --drain-time: each comes back at its own moment
    // of the next few seconds, so the new server is not hit by everyone in the same second.
    const restart = code === 1012 || code === 1001;
    if (S.everWelcomed) {
      setState('offline');
      if (was) noteHere(restart ? 'Server restarting; reconnecting…' : 'Connection lost.', 'offline');
    } else {
      el.loginButton.disabled = true;
      if (!S.takenRetries) loginStatus('Cannot reach the server; retrying…');
    }
    scheduleReconnect(restart);
  }

  function scheduleReconnect(restart) {
    clearTimeout(S.retryTimer);
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** S.attempt);
    S.attempt++;
    // Jitter so clients don't stampede: half the backoff and up to as much again, or after a
    // restart anywhere in RETRY_MIN_MS..RESTART_SPREAD_MS (the backoff goes on if it fails).
    const delay = restart ? RETRY_MIN_MS + Math.random() * (RESTART_SPREAD_MS - RETRY_MIN_MS)
      : base / 2 + Math.random() * base / 2;
    S.retryAt = Date.now() + delay;
    S.retryTimer = setTimeout(connect, delay);
    tickBanner();
  }

  function reconnectNow() {
    if (S.ws) return;
    S.attempt = 0;
    S.replaced = false;
    el.bannerRetry.textContent = 'Reconnect now';
    connect();
  }

  // ---- the outbox ----
  // Queues a client message; `view` (where it was typed) makes it show as a pending line there.
  function enqueue(msg, view) {
    const o = { cid: newCid(), msg, view: view || null, state: 'queued', error: '' };
    S.outbox.push(o);
    saveOutbox();
    if (o.view) showPending(o);
    pump();
    return o;
  }

  // Sends queued messages, in order, as fast as the pacing allows.
  function pump() {
    clearTimeout(S.pumpTimer);
    S.pumpTimer = 0;
    if (!S.welcomed || S.syncCid) { renderOutboxStatus(); return; }
    const now = Date.now();
    if (now < S.pauseUntil) { S.pumpTimer = setTimeout(pump, S.pauseUntil - now); renderOutboxStatus(); return; }
    S.tokens = Math.min(SEND_BURST, S.tokens + (now - S.tokensAt) * SEND_RATE / 1000);
    S.tokensAt = now;
    let inFlight = S.outbox.filter((o) => o.state === 'sent').length;
    for (const o of S.outbox) {
      if (o.state !== 'queued') continue;
      if (inFlight >= IN_FLIGHT) break;     // an ack (or error) calls pump again
      if (S.tokens < 1) { S.pumpTimer = setTimeout(pump, Math.ceil((1 - S.tokens) * 1000 / SEND_RATE)); break; }
      if (!send({ ...o.msg, cid: o.cid })) break;
      S.tokens -= 1;
      o.state = 'sent';
      inFlight++;
    }
    renderOutboxStatus();
  }

  function outboxIndex(cid) {
    return typeof cid === 'string' ? S.outbox.findIndex((o) => o.cid === cid) : -1;
  }
  // The server accepted `cid`: it leaves the outbox (and its pending line the log).
  function acked(cid) {
    const i = outboxIndex(cid);
    if (i < 0) return;
    const [o] = S.outbox.splice(i, 1);
    saveOutbox();
    removePending(o);
    pump();
  }
  // The server refused `cid`. Flood: back in the queue after a pause, no message. Anything
  // else: the line stays in the log, marked, with its text kept for the user to edit or drop.
  function refusedCid(cid, code, text) {
    const o = S.outbox[outboxIndex(cid)];
    if (!o) return false;
    if (code === 'flood') {
      o.state = 'queued';
      S.tokens = 0;
      S.pauseUntil = Date.now() + FLOOD_PAUSE_MS;
      pump();
      return true;
    }
    if (!o.view) { acked(cid); return false; }     // a command: its error is shown as usual
    o.state = 'failed';
    o.error = `${text} (${code})`;
    saveOutbox();
    showPending(o);
    pump();
    return true;
  }

  function renderOutboxStatus() {
    const waiting = S.outbox.filter((o) => o.state !== 'failed').length;
    if (waiting > SEND_BURST || (waiting && Date.now() < S.pauseUntil)) {
      el.outboxStatus.textContent = `Sending ${waiting} message${waiting === 1 ? '' : 's'}… the server takes about 5 a second; nothing you type is lost.`;
      el.outboxStatus.hidden = false;
    } else if (waiting && !S.welcomed) {
      el.outboxStatus.textContent = `${waiting} message${waiting === 1 ? '' : 's'} will be sent when the connection is back.`;
      el.outboxStatus.hidden = false;
    } else {
      el.outboxStatus.hidden = true;
      el.outboxStatus.textContent = '';
    }
  }

  function onFrame(data) {
    let m;
    try { m = JSON.parse(data); } catch { return; }
    if (!m || typeof m.type !== 'string') return;
    const h = handlers[m.type];
    if (h) h(m);
  }

  const handlers = {
    welcome(m) {
      S.welcomed = true;
      S.takenRetries = 0;
      S.attempt = 0;
      S.autoHello = true;
      S.name = String(m.name);
      S.uid = typeof m.uid === 'number' ? m.uid : null;
      if (S.epoch !== null && S.epoch !== m.epoch) archiveAll();
      S.epoch = m.epoch;
      S.read = loadRead();
      S.tokens = SEND_BURST;
      S.tokensAt = Date.now();
      const first = !S.everWelcomed;
      S.everWelcomed = true;
      S.replaced = false;
      for (const r of S.rooms.values()) r.confirmed = false;
      clearTimeout(S.rejoinTimer);
      // A room the server did not restore from our resume is joined again explicitly.
      S.rejoinTimer = setTimeout(() => {
        for (const r of S.rooms.values()) if (!r.confirmed) send({ type: 'join', room: r.name });
      }, 1500);
      if (first && typeof stored.view === 'string') S.pendingSwitch = stored.view;
      el.meName.textContent = S.name;
      el.login.hidden = true;
      el.app.hidden = false;
      setState('online');
      save();
      renderAll();
      if (first) el.input.focus();
    },

    ok(m) {
      if (m.cid === S.syncCid) {
        // The hello's answers are all in. A stored view that did not come back gives way.
        S.syncCid = null;
        if (!S.view && S.rooms.size) {
          S.pendingSwitch = null;
          switchTo('room', S.rooms.has(S.lastRoom) ? S.lastRoom : [...S.rooms.keys()].sort()[0]);
        } else if (!S.view) renderAll(true);
        pump();
        return;
      }
      acked(m.cid);
    },

    error(m) {
      const code = String(m.code || 'error');
      const text = String(m.message || code);
      if (m.cid && m.cid === S.syncCid) S.syncCid = null;
      if (refusedCid(m.cid, code, text)) return;
      if (!S.welcomed) {
        // Before welcome the only thing we sent is hello.
        if (code === 'name_taken' && S.autoHello && S.takenRetries < NAME_TAKEN_RETRIES && !S.everWelcomed) {
          // Probably our own dropped connection (or the page before a reload) that the server
          // has not noticed yet: try again after the usual back-off.
          S.takenRetries++;
          loginStatus(`Waiting for the previous session of ${S.wantName} to end…`);
          if (S.ws) { const ws = S.ws; ws.close(); }
          return;
        }
        S.autoHello = false;
        showLogin(text, code);
        return;
      }
      noteHere(`${text} (${code})`, 'error');
    },

    message(m) {
      if (typeof m.room !== 'string' || typeof m.id !== 'number') return;
      const r = ensureRoom(m.room);
      r.confirmed = true;
      acked(m.cid);
      if (r.byId.has(m.id)) return;
      const it = msgItem(m);
      const atEnd = insertMsg(r, it);
      if (r.typers.delete(it.from) && isCurrent(r)) renderTyping();
      const mine = it.from === S.name;
      if (isCurrent(r)) {
        if (atEnd) appendToLog(it, mine); else renderView(false);
        if (document.hidden && !mine) { r.unread++; renderSidebar(); } else markRead(r);
      } else if (!mine) {
        r.unread++;
        renderSidebar();
      }
      if (!mine && mentions(it.text)) alertUser(`${it.from} in #${r.name}`, it.text, () => switchTo('room', r.name));
      trim(r);
    },

    history(m) {
      if (typeof m.room !== 'string' || !Array.isArray(m.messages)) return;
      const r = ensureRoom(m.room);
      r.confirmed = true;
      // A gap only matters next to lines of this run the reader has seen; after a restart the
      // "server restarted" note already says it, and an empty room has nothing to miss.
      const hadLines = r.items.some((it) => it.kind === 'msg' && !it.archived);
      if (m.reset) {
        r.items = r.items.filter((it) => it.kind !== 'msg' || it.archived);
        r.byId.clear();
        r.lastId = 0;
      }
      let first = null;
      const list = m.messages.filter((x) => x && typeof x.id === 'number').sort((a, b) => a.id - b.id);
      for (const x of list) {
        acked(x.cid);      // accepted before a reload or a dropped link: not to be sent again
        if (r.byId.has(x.id)) continue;
        const it = msgItem({ ...x, room: m.room });
        insertMsg(r, it);
        if (!first) first = it;
      }
      if (m.complete === false && hadLines) {
        const gap = { kind: 'note', text: 'Some earlier messages are no longer available.', cls: 'gap', ts: Date.now() };
        const i = first ? r.items.indexOf(first) : r.items.length;
        r.items.splice(i, 0, gap);
      }
      recount(r);
      trim(r);
      if (wantsView(r)) { switchTo('room', r.name); return; }
      if (isCurrent(r)) renderView(false);
      renderSidebar();
    },

    members(m) {
      if (typeof m.room !== 'string' || !Array.isArray(m.members)) return;
      const r = ensureRoom(m.room);
      r.confirmed = true;
      r.members = m.members.map(String);
      if (isCurrent(r)) renderMembers();
      else if (wantsView(r)) switchTo('room', r.name);
    },

    joined(m) {
      const r = ensureRoom(String(m.room));
      const who = String(m.name);
      // The server may coalesce full member lists in a burst; joined/left/renamed keep it exact.
      editMembers(r, (list) => { if (!list.includes(who)) list.push(who); });
      if (who === S.name) {
        r.confirmed = true;
        if (wantsView(r)) switchTo('room', r.name);
        else renderSidebar();
        save();
      } else {
        note(r, [{ name: who }, ' joined'], 'presence');
      }
    },

    left(m) {
      const name = String(m.room);
      const who = String(m.name);
      const r = S.rooms.get(name);
      if (!r) return;
      if (who === S.name) {
        S.rooms.delete(name);
        if (S.lastRoom === name) S.lastRoom = null;
        if (S.pendingSwitch === name) S.pendingSwitch = null;
        if (isViewing('room', name)) {
          const next = S.rooms.keys().next();
          S.view = null;
          if (!next.done) switchTo('room', next.value); else renderAll();
        } else {
          renderSidebar();
        }
        save();
      } else {
        editMembers(r, (list) => { const i = list.indexOf(who); if (i >= 0) list.splice(i, 1); });
        note(r, [{ name: who }, ' left'], 'presence');
        if (r.typers.delete(who) && isCurrent(r)) renderTyping();
      }
    },

    renamed(m) {
      const r = S.rooms.get(String(m.room));
      const from = String(m.from);
      const to = String(m.to);
      if (from === S.name) {
        S.name = to;
        el.meName.textContent = to;
        S.wantName = to;
        save();
      }
      if (r) {
        editMembers(r, (list) => { const i = list.indexOf(from); if (i >= 0) list[i] = to; });
        note(r, [{ name: from }, ' is now known as ', { name: to }], 'presence');
        r.typers.delete(from);
      }
    },

    dm(m) {
      acked(m.cid);
      const from = String(m.from);
      const mine = from === S.name;
      const peer = peerOf(m);
      const c = ensureDm(peer);
      if (typeof m.pair === 'string') c.pair = m.pair;
      const it = dmItem(m);
      if (it.id && c.byId.has(it.id)) return;
      if (it.id) { c.byId.set(it.id, it); c.lastId = Math.max(c.lastId, it.id); }
      c.items.push(it);
      trim(c);
      if (isCurrent(c)) {
        appendToLog(it, mine);
        if (document.hidden && !mine) { c.unread++; renderSidebar(); } else markRead(c);
      } else {
        if (!mine) {
          c.unread++;
          // A notice where the reader is, not the text: the conversation has its own view.
          const v = currentModel();
          const last = v && v.items[v.items.length - 1];
          if (!(last && last.kind === 'note' && last.cls === 'dm' && last.openDm === peer)) {
            noteHere(['Direct message from ', { name: peer }], 'dm', peer);
          }
        } else if (!isCurrent(c)) {
          noteHere(['Sent to ', { name: peer }], 'dm', peer);
        }
        renderSidebar();
      }
      if (!mine) alertUser(`Direct message from ${peer}`, it.text, () => switchTo('dm', peer));
    },

    dm_history(m) {
      if (typeof m.pair !== 'string' || !Array.isArray(m.messages)) return;
      const list = m.messages.filter((x) => x && typeof x.id === 'number').sort((a, b) => a.id - b.id);
      const peer = typeof m.with === 'string' ? m.with : (list.length ? peerOf(list[list.length - 1]) : null);
      if (!peer) return;
      const c = ensureDm(peer);
      c.pair = m.pair;
      if (m.reset) {
        c.items = c.items.filter((it) => it.kind !== 'msg' || it.archived);
        c.byId.clear();
        c.lastId = 0;
      }
      for (const x of list) {
        acked(x.cid);
        if (c.byId.has(x.id)) continue;
        const it = dmItem(x);
        c.byId.set(it.id, it);
        c.lastId = Math.max(c.lastId, it.id);
        c.items.push(it);
      }
      recount(c);
      trim(c);
      if (isCurrent(c)) renderView(false);
      renderSidebar();
    },

    typing(m) {
      const who = String(m.name);
      if (who === S.name) return;
      const r = S.rooms.get(String(m.room));
      if (!r) return;
      r.typers.set(who, Date.now() + TYPING_SHOW_MS);
      if (isCurrent(r)) renderTyping();
    },

    rooms(m) {
      if (!Array.isArray(m.rooms)) return;
      const parts = ['Rooms: '];
      m.rooms.forEach((x, i) => parts.push(i ? ', ' : '', { name: String(x.name) }, ` (${Number(x.members)})`));
      noteHere(m.rooms.length ? parts : 'No rooms.', 'info');
    },

    info(m) { noteHere(String(m.text), 'info'); },
  };

  // Whether room `r` should become the view now: it is the one asked for, or nothing is shown
  // and nothing else was asked for. (Opening a room marks it read: the rooms a resume brings
  // back must not all flash by on the way to the stored view.)
  function wantsView(r) {
    return S.pendingSwitch === r.name || (!S.view && !S.pendingSwitch);
  }

  function editMembers(r, edit) {
    if (!Array.isArray(r.members)) return;
    edit(r.members);
    if (isCurrent(r)) renderMembers();
  }

  // On a new server run message ids start again: keep the old lines visible, but out of the
  // id bookkeeping, so the new run's lines neither replace nor duplicate them.
  function archiveAll() {
    for (const r of S.rooms.values()) {
      let any = false;
      for (const it of r.items) if (it.kind === 'msg' && !it.archived) { it.archived = true; any = true; }
      r.byId.clear();
      r.lastId = 0;
      if (any) r.items.push({ kind: 'note', text: 'The server restarted; the lines above are from before.', cls: 'restart', ts: Date.now() });
    }
  }

  // ---- state, banner, login ----
  function setState(st) {
    el.body.dataset.state = st;
    const online = st === 'online';
    // Offline, typing goes on: the outbox keeps it until the server is back.
    el.input.disabled = !S.everWelcomed || S.replaced;
    el.send.disabled = !S.everWelcomed || S.replaced;
    el.joinName.disabled = !online;
    el.leaveButton.disabled = !online;
    el.banner.hidden = online || !S.everWelcomed;
    el.composer.classList.toggle('disabled', !online);
    tickBanner();
  }

  function tickBanner() {
    clearTimeout(S.tickTimer);
    if (!S.everWelcomed || S.welcomed || S.replaced) return;
    if (S.ws) {
      el.bannerText.textContent = 'Offline — reconnecting…';
    } else {
      const s = Math.max(0, Math.ceil((S.retryAt - Date.now()) / 1000));
      el.bannerText.textContent = s > 0 ? `Offline — reconnecting in ${s} s.` : 'Offline — reconnecting…';
      S.tickTimer = setTimeout(tickBanner, 250);
    }
  }

  function loginStatus(t) { el.loginStatus.textContent = t; }

  function showLogin(error, code) {
    el.app.hidden = true;
    el.login.hidden = false;
    el.body.dataset.state = 'login';
    el.loginError.textContent = code === 'name_taken' ? `${error} — please pick another name.` : error;
    el.loginName.setAttribute('aria-invalid', 'true');
    el.loginButton.disabled = !S.ws;
    loginStatus('');
    if (!el.loginName.value && S.wantName) el.loginName.value = S.wantName;
    el.loginName.focus();
    el.loginName.select();
  }

  el.loginForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const name = el.loginName.value.trim();
    const len = [...name].length;
    if (!name || len > NAME_MAX) {
      el.loginError.textContent = name
        ? `That name is too long (${len} characters; at most ${NAME_MAX}).` : 'Please enter a name.';
      el.loginName.setAttribute('aria-invalid', 'true');
      el.loginName.focus();
      return;
    }
    el.loginError.textContent = '';
    el.loginName.removeAttribute('aria-invalid');
    S.wantName = name;
    S.autoHello = true;
    S.takenRetries = NAME_TAKEN_RETRIES;   // a name the user just typed is not ours to wait for
    if (S.ws && S.ws.readyState === WebSocket.OPEN) sendHello();
    else { loginStatus('Connecting…'); reconnectNow(); }
  });

  el.bannerRetry.addEventListener('click', reconnectNow);
  el.loginName.addEventListener('input', () => {
    const len = [...el.loginName.value.trim()].length;
    if (len > NAME_MAX) {
      el.loginError.textContent = `That name is too long (${len} characters; at most ${NAME_MAX}).`;
      el.loginName.setAttribute('aria-invalid', 'true');
    } else if (el.loginName.getAttribute('aria-invalid') === 'true') {
      el.loginError.textContent = '';
      el.loginName.removeAttribute('aria-invalid');
    }
  });
  window.addEventListener('online', () => { if (!S.ws) reconnectNow(); });

  // ---- views ----
  function isViewing(kind, name) { return !!S.view && S.view.kind === kind && S.view.name === name; }

  function switchTo(kind, name) {
    const v = kind === 'room' ? S.rooms.get(name) : S.dms.get(name);
    if (!v) return;
    const old = currentModel();
    if (old && old !== v) old.divider = null;
    S.view = { kind, name };
    if (kind === 'room') { S.lastRoom = name; if (S.pendingSwitch === name) S.pendingSwitch = null; }
    // The unread divider goes above the first line the reader has not seen, and stays while
    // the view is open.
    if (old !== v) v.divider = v.unread > 0 ? readOf(v) : null;
    markRead(v);
    v.unread = 0;
    save();
    renderAll(true);
    closeDrawer();
  }

  function renderAll(jump) {
    renderSidebar();
    renderHeader();
    renderMembers();
    renderView(!!jump);
    renderTyping();
  }

  const narrow = window.matchMedia('(max-width: 700px)');
  narrow.addEventListener('change', () => renderHeader());

  // ---- isolated text: names and texts from users never reorder what is around them ----
  function bdi(text, cls) {
    const b = document.createElement('bdi');
    if (cls) b.className = cls;
    b.textContent = text;
    return b;
  }
  // Note parts: strings are ours, {name} parts come from users.
  function parts(text) {
    if (!Array.isArray(text)) return [document.createTextNode(String(text))];
    return text.map((p) => (typeof p === 'string' ? document.createTextNode(p) : bdi(String(p.name))));
  }
  const partsText = (text) => (Array.isArray(text) ? text.map((p) => (typeof p === 'string' ? p : p.name)).join('') : String(text));

  // Links: http and https URLs in a text become <a> elements made with DOM calls; anything else
  // (javascript:, data:, ...) stays text. Trailing punctuation is not part of a link.
  const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  function linkify(text, into) {
    let at = 0;
    for (const m of text.matchAll(URL_RE)) {
      let url = m[0];
      // Drop trailing punctuation, and a closing bracket that has no opening one in the URL.
      for (;;) {
        const c = url[url.length - 1];
        if ('.,;:!?*'.includes(c)) { url = url.slice(0, -1); continue; }
        const open = { ')': '(', ']': '[', '}': '{' }[c];
        if (open && url.split(open).length < url.split(c).length) { url = url.slice(0, -1); continue; }
        break;
      }
      let href = null;
      try {
        const u = new URL(url);
        if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
      } catch { /* not a URL: stays text */ }
      if (!href) continue;
      if (m.index > at) into.append(text.slice(at, m.index));
      const a = document.createElement('a');
      a.href = href;
      a.target = '_blank';
      a.rel = 'noopener noreferrer';
      a.textContent = url;
      into.append(a);
      at = m.index + url.length;
    }
    if (at < text.length) into.append(text.slice(at));
  }

  // ---- views ----
  function setTitle(node, prefix, name) {
    node.replaceChildren(prefix, bdi(name));
  }

  function renderHeader() {
    const v = currentModel();
    const empty = !v;
    el.empty.hidden = !empty || !S.everWelcomed;
    el.log.hidden = empty;
    if (!v) {
      el.viewTitle.textContent = 'Not in any room';
      el.viewSub.textContent = '';
      el.leaveButton.hidden = true;
      el.input.placeholder = 'Join a room to chat: type /join ROOM, or use the form above';
      return;
    }
    el.leaveButton.hidden = false;
    if (v.kind === 'room') {
      setTitle(el.viewTitle, '# ', v.name);
      el.viewSub.textContent = `${v.members.length} ${v.members.length === 1 ? 'person' : 'people'}`;
      el.leaveButton.textContent = 'Leave';
      el.leaveButton.setAttribute('aria-label', `Leave room ${v.name}`);
      el.input.placeholder = narrow.matches
        ? `Message #${v.name}` : `Message #${v.name} — Enter to send, Shift+Enter for a new line, /help for commands`;
    } else {
      setTitle(el.viewTitle, 'DM · ', v.name);
      el.viewSub.textContent = 'direct message';
      el.leaveButton.textContent = 'Close';
      el.leaveButton.setAttribute('aria-label', `Close conversation with ${v.name}`);
      el.input.placeholder = `Direct message to ${v.name}`;
    }
  }

  function navButton(label, unread, current, onclick, prefix) {
    const li = document.createElement('li');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'nav-item';
    if (current) b.setAttribute('aria-current', 'page');
    const p = document.createElement('span');
    p.className = 'prefix';
    p.setAttribute('aria-hidden', 'true');
    p.textContent = prefix;
    const n = document.createElement('span');
    n.className = 'nav-name';
    n.dir = 'auto';
    n.textContent = label;
    b.append(p, n);
    if (unread > 0) {
      const badge = document.createElement('span');
      badge.className = 'badge';
      badge.textContent = unread > 99 ? '99+' : String(unread);
      badge.setAttribute('aria-label', `${unread} unread`);
      b.append(badge);
    }
    b.addEventListener('click', onclick);
    li.append(b);
    return li;
  }

  function renderSidebar() {
    let total = 0;
    const rooms = [...S.rooms.values()].sort((a, b) => a.name.localeCompare(b.name));
    el.roomList.replaceChildren(...rooms.map((r) => {
      total += r.unread;
      const li = navButton(r.name, r.unread, isViewing('room', r.name), () => switchTo('room', r.name), '#');
      li.dataset.room = r.name;
      return li;
    }));
    const dms = [...S.dms.values()];
    el.dmSection.hidden = dms.length === 0;
    el.dmList.replaceChildren(...dms.map((c) => {
      total += c.unread;
      const li = navButton(c.name, c.unread, isViewing('dm', c.name), () => switchTo('dm', c.name), '@');
      li.dataset.dm = c.name;
      return li;
    }));
    el.menuUnread.hidden = total === 0;
    el.menuUnread.textContent = String(total);
    S.totalUnread = total;
    renderTitle();
  }

  function renderTitle() {
    const base = S.totalUnread ? `(${S.totalUnread}) confab` : 'confab';
    document.title = S.flashCount % 2 ? `★ ${S.flashText}` : base;
  }

  function renderMembers() {
    const v = currentModel();
    if (!v || v.kind !== 'room') { el.membersSection.hidden = true; return; }
    el.membersSection.hidden = false;
    setTitle(el.membersTitle, 'People in #', v.name);
    el.membersTitle.append(` (${v.members.length})`);
    el.memberList.replaceChildren(...v.members.map((name) => {
      const li = document.createElement('li');
      li.dataset.name = name;
      if (name === S.name) {
        li.append(bdi(name));
        const you = document.createElement('span');
        you.className = 'muted';
        you.textContent = ' (you)';
        li.append(you);
      } else {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'member';
        b.append(bdi(name));
        b.title = `Send ${name} a direct message`;
        b.addEventListener('click', () => { ensureDm(name); switchTo('dm', name); el.input.focus(); });
        li.append(b);
      }
      return li;
    }));
    if (S.view && S.view.kind === 'room') el.viewSub.textContent = `${v.members.length} ${v.members.length === 1 ? 'person' : 'people'}`;
  }

  function renderTyping() {
    clearTimeout(S.typingTimer);
    const v = currentModel();
    if (!v || v.kind !== 'room') { el.typing.textContent = ''; return; }
    const now = Date.now();
    let next = Infinity;
    const names = [];
    for (const [who, until] of v.typers) {
      if (until <= now) v.typers.delete(who);
      else { names.push(who); next = Math.min(next, until); }
    }
    if (names.length === 1) el.typing.replaceChildren(bdi(names[0]), ' is typing…');
    else if (names.length === 2) el.typing.replaceChildren(bdi(names[0]), ' and ', bdi(names[1]), ' are typing…');
    else if (names.length > 2) el.typing.textContent = 'Several people are typing…';
    else el.typing.textContent = '';
    if (next !== Infinity) S.typingTimer = setTimeout(renderTyping, next - now + 20);
  }

  // ---- the log ----
  function fmtTime(ts) {
    const d = new Date(Number(ts));
    if (Number.isNaN(d.getTime())) return ['', ''];
    const now = new Date();
    const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    const short = d.toDateString() === now.toDateString()
      ? hm : `${d.toLocaleDateString([], { month: 'short', day: 'numeric' })} ${hm}`;
    return [short, d.toISOString()];
  }

  // Whether line `it` continues the group of line `prev` (same person, close in time).
  function continues(prev, it) {
    return !!prev && prev.kind === 'msg' && it.kind === 'msg' && !prev.action && !it.action
      && prev.from === it.from && prev.archived === it.archived && !!prev.dm === !!it.dm
      && Math.abs(Number(it.ts) - Number(prev.ts)) < GROUP_MS;
  }

  function renderItem(it, prev) {
    const li = document.createElement('li');
    if (it.kind === 'note') {
      li.className = `note ${it.cls}`;
      const t = document.createElement('span');
      t.className = 'text';
      if (it.cls === 'dm') {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = 'DM';
        li.append(tag, ' ');
      }
      t.append(...parts(it.text));
      li.append(t);
      if (it.openDm) {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'link';
        b.textContent = 'open';
        b.addEventListener('click', () => switchTo('dm', it.openDm));
        li.append(' ', b);
      }
      return li;
    }
    li.className = 'msg';
    if (it.action) li.classList.add('action');
    if (it.archived) li.classList.add('archived');
    if (it.dm) li.classList.add('dm');
    if (it.from === S.name) li.classList.add('mine');
    if (continues(prev, it)) li.classList.add('cont');
    if (!it.dm) {
      li.dataset.room = it.room;
      li.dataset.id = String(it.id);
      li.dataset.epoch = String(it.epoch);
    }
    const [short, iso] = fmtTime(it.ts);
    const time = document.createElement('time');
    time.textContent = short;
    if (iso) { time.dateTime = iso; time.title = new Date(Number(it.ts)).toLocaleString(); }
    const from = document.createElement('span');
    from.className = 'from';
    if (it.action) from.append('* ');
    from.append(bdi(it.from));
    const sep = document.createElement('span');
    sep.className = 'visually-hidden';
    sep.textContent = it.action ? ' ' : ': ';
    const text = document.createElement('span');
    text.className = 'text';
    text.dir = 'auto';
    linkify(it.text, text);
    li.append(time, ' ', from, sep, text);
    return li;
  }

  // The "new" divider: above the first line of others after the last read id when the view
  // was opened.
  function dividerBefore(v, it) {
    return v.divider !== null && v.divider !== undefined && it.kind === 'msg' && !it.archived
      && it.id > v.divider && it.from !== S.name;
  }
  function dividerLi() {
    const li = document.createElement('li');
    li.className = 'divider';
    li.setAttribute('role', 'separator');
    const span = document.createElement('span');
    span.textContent = 'New';
    li.append(span);
    return li;
  }

  // Lines of the outbox typed in view `v`, not yet accepted: shown at the end, in order.
  function pendingLi(o) {
    const li = document.createElement('li');
    li.className = `msg mine pending${o.state === 'failed' ? ' failed' : ''}`;
    li.dataset.cid = o.cid;
    const time = document.createElement('time');
    time.textContent = o.state === 'failed' ? 'not sent' : 'sending…';
    const from = document.createElement('span');
    from.className = 'from';
    from.append(bdi(S.name || ''));
    const sep = document.createElement('span');
    sep.className = 'visually-hidden';
    sep.textContent = ': ';
    const text = document.createElement('span');
    text.className = 'text';
    text.dir = 'auto';
    text.textContent = o.msg.text;
    li.append(time, ' ', from, sep, text);
    if (o.state === 'failed') {
      const why = document.createElement('span');
      why.className = 'why';
      why.textContent = ` ${o.error} `;
      const edit = document.createElement('button');
      edit.type = 'button';
      edit.className = 'link';
      edit.textContent = 'edit';
      edit.addEventListener('click', () => {
        if (el.input.value.trim()) el.input.value += `\n${o.msg.text}`; else el.input.value = o.msg.text;
        autosize();
        dropFailed(o);
        el.input.focus();
      });
      const drop = document.createElement('button');
      drop.type = 'button';
      drop.className = 'link';
      drop.textContent = 'discard';
      drop.addEventListener('click', () => dropFailed(o));
      li.append(why, edit, ' ', drop);
    }
    return li;
  }
  const viewOf = (o) => o.view && (o.view.kind === 'room' ? S.rooms.get(o.view.name) : S.dms.get(o.view.name));
  function dropFailed(o) {
    const i = S.outbox.indexOf(o);
    if (i >= 0) S.outbox.splice(i, 1);
    saveOutbox();
    removePending(o);
  }
  function showPending(o) {
    if (!isCurrent(viewOf(o))) return;
    const old = el.log.querySelector(`li.pending[data-cid="${CSS.escape(o.cid)}"]`);
    const li = pendingLi(o);
    if (old) old.replaceWith(li); else { el.log.append(li); scrollToBottom(); }
  }
  function removePending(o) {
    const old = el.log.querySelector(`li.pending[data-cid="${CSS.escape(o.cid)}"]`);
    if (old) old.remove();
  }

  // `stuck`: the reader was at the bottom when the log last scrolled. The log can shrink without
  // a scroll event (offline banner, a growing input, a phone keyboard); a reader who was at the
  // bottom stays there.
  let stuck = true;
  function atBottom() {
    const l = el.log;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 40;
  }
  function scrollToBottom() {
    el.log.scrollTop = el.log.scrollHeight;
    el.newMessages.hidden = true;
    stuck = true;
  }

  // Appends a line of the current view (before the pending lines, which stay last).
  function appendToLog(it, force) {
    const v = currentModel();
    const stick = force || stuck || atBottom();
    const i = v ? v.items.lastIndexOf(it) : -1;
    const prev = i > 0 ? v.items[i - 1] : null;
    const nodes = [];
    const divide = v && dividerBefore(v, it) && !el.log.querySelector('li.divider');
    if (divide) nodes.push(dividerLi());
    nodes.push(renderItem(it, divide ? null : prev));
    const firstPending = el.log.querySelector('li.pending');
    if (firstPending) firstPending.before(...nodes); else el.log.append(...nodes);
    if (stick) scrollToBottom();
    else el.newMessages.hidden = false;
  }

  function renderView(jump) {
    const v = currentModel();
    const stick = jump || stuck || atBottom();
    const top = el.log.scrollTop;
    el.log.setAttribute('aria-busy', 'true');
    const nodes = [];
    let divided = false;
    let divNode = null;
    if (v) {
      v.items.forEach((it, i) => {
        const divide = !divided && dividerBefore(v, it);
        if (divide) { divided = true; divNode = dividerLi(); nodes.push(divNode); }
        nodes.push(renderItem(it, divide ? null : v.items[i - 1]));
      });
      for (const o of S.outbox) if (viewOf(o) === v) nodes.push(pendingLi(o));
    }
    el.log.replaceChildren(...nodes);
    el.log.setAttribute('aria-busy', 'false');
    if (jump && divNode && divNode.offsetTop > el.log.clientHeight / 2) {
      // Opening a view with unread lines: show the divider near the top, not the very end.
      el.log.scrollTop = divNode.offsetTop - 40;
      stuck = atBottom();
      el.newMessages.hidden = stuck;
    } else if (stick) scrollToBottom();
    else el.log.scrollTop = top;
  }

  el.log.addEventListener('scroll', () => {
    stuck = atBottom();
    if (stuck) el.newMessages.hidden = true;
  });
  if (window.ResizeObserver) new ResizeObserver(() => { if (stuck) scrollToBottom(); }).observe(el.log);
  el.newMessages.addEventListener('click', () => { scrollToBottom(); el.input.focus(); });

  // ---- mentions and DMs while the tab is hidden: a notification or a title flash (opt-in) ----
  function notifyOn() {
    try { return localStorage.getItem(NOTIFY_KEY) === '1'; } catch { return false; }
  }
  function mentions(text) {
    if (!S.name) return false;
    const esc = S.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    return new RegExp(`(^|[^\\p{L}\\p{N}_-])@?${esc}($|[^\\p{L}\\p{N}_-])`, 'iu').test(text);
  }
  function alertUser(title, body, open) {
    if (!document.hidden || !notifyOn()) return;
    if (window.Notification && Notification.permission === 'granted') {
      try {
        const n = new Notification(title, { body: body.slice(0, 200), tag: 'confab' });
        n.onclick = () => { window.focus(); open(); n.close(); };
      } catch { /* some browsers only allow notifications from a service worker */ }
    }
    S.flashText = title;
    if (!S.flashTimer) {
      S.flashTimer = setInterval(() => { S.flashCount++; renderTitle(); }, 1000);
      S.flashCount = 1;
      renderTitle();
    }
  }
  function stopFlash() {
    clearInterval(S.flashTimer);
    S.flashTimer = 0;
    S.flashCount = 0;
    renderTitle();
  }
  el.notify.checked = notifyOn();
  el.notify.addEventListener('change', async () => {
    try { localStorage.setItem(NOTIFY_KEY, el.notify.checked ? '1' : '0'); } catch { /* per page then */ }
    if (el.notify.checked && window.Notification && Notification.permission === 'default') {
      try { await Notification.requestPermission(); } catch { /* the title still flashes */ }
    }
  });

  // ---- composing ----
  function composerError(t) {
    el.composerError.textContent = t;
    el.composerError.hidden = !t;
  }

  function submit() {
    const text = el.input.value;
    if (!text.trim() || !S.everWelcomed) return;
    const len = [...text].length;
    if (len > TEXT_MAX) {
      composerError(`This message is too long (${len} characters; at most ${TEXT_MAX}). Nothing was sent.`);
      return;
    }
    composerError('');
    const v = currentModel();
    const cmd = text.startsWith('/');
    if (v && v.kind === 'dm' && !cmd) {
      enqueue({ type: 'dm', to: v.name, text }, { kind: 'dm', name: v.name });
    } else {
      const room = v && v.kind === 'room' ? v.name : null;
      const join = /^\/join\s+#?(\S+)/.exec(text);
      if (join) S.pendingSwitch = join[1];
      if (!room) {
        if (join) enqueue({ type: 'join', room: join[1] });
        else if (cmd) enqueue({ type: 'say', room: S.lastRoom || 'lobby', text });
        else {
          composerError('You are not in any room: join one first (type /join ROOM, or use the form).');
          return;
        }
      } else if (cmd) {
        enqueue({ type: 'say', room, text });
      } else {
        enqueue({ type: 'say', room, text }, { kind: 'room', name: room });
      }
    }
    el.input.value = '';
    autosize();
    if (v && v.kind === 'room') S.lastTypingSent.delete(v.name);
    scrollToBottom();
  }

  function autosize() {
    el.input.style.height = 'auto';
    el.input.style.height = `${Math.min(el.input.scrollHeight, 160)}px`;
  }

  el.composer.addEventListener('submit', (e) => { e.preventDefault(); submit(); el.input.focus(); });
  el.input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
  });
  el.input.addEventListener('input', () => {
    autosize();
    if (!el.composerError.hidden && [...el.input.value].length <= TEXT_MAX) composerError('');
    const v = currentModel();
    const t = el.input.value;
    if (!v || v.kind !== 'room' || !t.trim() || t.startsWith('/')) return;
    const last = S.lastTypingSent.get(v.name) || 0;
    if (Date.now() - last < TYPING_SEND_MS) return;
    if (send({ type: 'typing', room: v.name })) S.lastTypingSent.set(v.name, Date.now());
  });

  function joinRoom(input) {
    const room = input.value.trim().replace(/^#/, '');
    if (!room) return;
    const len = [...room].length;
    if (len > ROOM_MAX) { noteHere(`That room name is too long (${len} characters; at most ${ROOM_MAX}).`, 'error'); composerError(`That room name is too long (${len} characters; at most ${ROOM_MAX}).`); return; }
    input.value = '';
    if (S.rooms.has(room)) { switchTo('room', room); return; }
    S.pendingSwitch = room;
    enqueue({ type: 'join', room });
  }
  el.joinForm.addEventListener('submit', (e) => { e.preventDefault(); joinRoom(el.joinName); });
  el.emptyJoin.addEventListener('submit', (e) => { e.preventDefault(); joinRoom(e.target.elements.room); });

  el.leaveButton.addEventListener('click', () => {
    const v = currentModel();
    if (!v) return;
    if (v.kind === 'room') { enqueue({ type: 'leave', room: v.name }); return; }
    S.dms.delete(v.name);
    S.view = null;
    if (S.lastRoom && S.rooms.has(S.lastRoom)) switchTo('room', S.lastRoom); else renderAll(true);
  });


  // ---- the sidebar as a drawer on small screens ----
  function openDrawer() {
    el.body.classList.add('drawer-open');
    el.scrim.hidden = false;
    el.menuButton.setAttribute('aria-expanded', 'true');
    const first = el.sidebar.querySelector('button, input');
    if (first) first.focus();
  }
  function closeDrawer() {
    if (!el.body.classList.contains('drawer-open')) return;
    el.body.classList.remove('drawer-open');
    el.scrim.hidden = true;
    el.menuButton.setAttribute('aria-expanded', 'false');
  }
  el.menuButton.addEventListener('click', () => {
    if (el.body.classList.contains('drawer-open')) closeDrawer(); else openDrawer();
  });
  el.scrim.addEventListener('click', closeDrawer);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && el.body.classList.contains('drawer-open')) { closeDrawer(); el.menuButton.focus(); }
  });
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) return;
    stopFlash();
    const v = currentModel();
    if (v) { markRead(v); renderSidebar(); }
  });

  // ---- start ----
  if (typeof stored.name === 'string' && stored.name) {
    S.wantName = stored.name;
    S.autoHello = true;
    S.everWelcomed = false;
    el.loginName.value = stored.name;
    loginStatus(`Signing in as ${stored.name}…`);
  }
  el.loginButton.disabled = true;
  connect();
})();
