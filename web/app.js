// confab chat page: speaks the protocol in README.md over one WebSocket.
// Every piece of text that came from the network is put into the page with textContent or
// createTextNode, never as markup.
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
  };

  const RETRY_MIN_MS = 500;         // first reconnect delay; doubles per failed attempt
  const RETRY_MAX_MS = 10000;
  const TYPING_SEND_MS = 3000;      // send at most one "typing" per room this often
  const TYPING_SHOW_MS = 6000;      // how long a "typing" notice lasts without a refresh
  const NAME_TAKEN_RETRIES = 6;     // our previous connection may still hold the name for a moment
  const MAX_ITEMS = 2000;           // lines kept per view
  const STORE_KEY = 'confab.session';

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

  // ---- model ----
  function ensureRoom(name) {
    let r = S.rooms.get(name);
    if (!r) {
      r = { kind: 'room', name, items: [], byId: new Map(), lastId: 0, unread: 0, members: [],
            typers: new Map(), confirmed: true };
      S.rooms.set(name, r);
    }
    return r;
  }
  function ensureDm(peer) {
    let c = S.dms.get(peer);
    if (!c) { c = { kind: 'dm', name: peer, items: [], unread: 0 }; S.dms.set(peer, c); }
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

  function note(v, text, cls, openDm) {
    if (!v) return null;
    const it = { kind: 'note', text, cls: cls || '', ts: Date.now(), openDm };
    v.items.push(it);
    if (isCurrent(v)) appendToLog(it, false);
    trim(v);
    return it;
  }
  const noteHere = (text, cls, openDm) => note(currentModel() || S.rooms.get(S.lastRoom), text, cls, openDm);

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
    ws.onclose = () => { if (ws === S.ws) onClose(); };
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
    const msg = { type: 'hello', name: S.wantName };
    const rooms = {};
    for (const r of S.rooms.values()) rooms[r.name] = r.lastId;
    let epoch = S.epoch;
    if (!Object.keys(rooms).length && Array.isArray(stored.rooms)) {
      // Fresh page with a stored session: ask for every room's full history again.
      for (const n of stored.rooms) if (typeof n === 'string') rooms[n] = 0;
      epoch = stored.epoch;
    }
    if (Object.keys(rooms).length) msg.resume = { epoch: Number(epoch) || 0, rooms };
    if (!S.everWelcomed) loginStatus(`Signing in as ${S.wantName}…`);
    if (send(msg)) window.confabPlain?.helloSent(S.ws, JSON.stringify(msg));
  }

  function onClose() {
    S.ws = null;
    const was = S.welcomed;
    S.welcomed = false;
    if (S.everWelcomed) {
      setState('offline');
      if (was) noteHere('Connection lost.', 'offline');
    } else {
      el.loginButton.disabled = true;
      if (!S.takenRetries) loginStatus('Cannot reach the server; retrying…');
    }
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(S.retryTimer);
    const base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** S.attempt);
    S.attempt++;
    const delay = base / 2 + Math.random() * base / 2;   // jitter so clients don't stampede
    S.retryAt = Date.now() + delay;
    S.retryTimer = setTimeout(connect, delay);
    tickBanner();
  }

  function reconnectNow() {
    if (S.ws) return;
    S.attempt = 0;
    connect();
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
      if (S.epoch !== null && S.epoch !== m.epoch) archiveAll();
      S.epoch = m.epoch;
      const first = !S.everWelcomed;
      S.everWelcomed = true;
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

    error(m) {
      const code = String(m.code || 'error');
      const text = String(m.message || code);
      if (!S.welcomed) {
        // Before welcome the only thing we sent is hello.
        if (code === 'name_taken' && S.autoHello && S.takenRetries < NAME_TAKEN_RETRIES) {
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
      if (r.byId.has(m.id)) return;
      const it = msgItem(m);
      const atEnd = insertMsg(r, it);
      if (r.typers.delete(it.from) && isCurrent(r)) renderTyping();
      if (isCurrent(r)) {
        if (atEnd) appendToLog(it, it.from === S.name); else renderView(false);
        if (document.hidden && it.from !== S.name) { r.unread++; renderSidebar(); }
      } else if (it.from !== S.name) {
        r.unread++;
        renderSidebar();
      }
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
      let unseen = 0;
      const list = m.messages.filter((x) => x && typeof x.id === 'number').sort((a, b) => a.id - b.id);
      for (const x of list) {
        if (r.byId.has(x.id)) continue;
        const it = msgItem({ ...x, room: m.room });
        insertMsg(r, it);
        if (!first) first = it;
        if (it.from !== S.name) unseen++;
      }
      if (m.complete === false && hadLines) {
        const gap = { kind: 'note', text: 'Some earlier messages are no longer available.', cls: 'gap', ts: Date.now() };
        const i = first ? r.items.indexOf(first) : r.items.length;
        r.items.splice(i, 0, gap);
      }
      if (!m.reset && !isCurrent(r)) r.unread += unseen;
      trim(r);
      if (!S.view || S.pendingSwitch === r.name) { switchTo('room', r.name); return; }
      if (isCurrent(r)) renderView(false);
      renderSidebar();
    },

    members(m) {
      if (typeof m.room !== 'string' || !Array.isArray(m.members)) return;
      const r = ensureRoom(m.room);
      r.confirmed = true;
      r.members = m.members.map(String);
      if (isCurrent(r)) renderMembers();
      else if (!S.view) switchTo('room', r.name);
    },

    joined(m) {
      const r = ensureRoom(String(m.room));
      const who = String(m.name);
      // The server may coalesce full member lists in a burst; joined/left/renamed keep it exact.
      editMembers(r, (list) => { if (!list.includes(who)) list.push(who); });
      if (who === S.name) {
        r.confirmed = true;
        if (!S.view || S.pendingSwitch === r.name) switchTo('room', r.name);
        else renderSidebar();
        save();
      } else {
        note(r, `${who} joined`, 'presence');
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
        note(r, `${who} left`, 'presence');
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
        note(r, `${from} is now known as ${to}`, 'presence');
        r.typers.delete(from);
      }
    },

    dm(m) {
      const from = String(m.from);
      const to = String(m.to);
      const mine = from === S.name;
      const peer = mine ? to : from;
      const c = ensureDm(peer);
      const it = { kind: 'msg', dm: true, ts: m.ts, from, text: String(m.text), action: false };
      c.items.push(it);
      trim(c);
      if (isCurrent(c)) {
        appendToLog(it, mine);
        if (document.hidden && !mine) { c.unread++; renderSidebar(); }
      } else {
        if (!mine) c.unread++;
        noteHere(mine ? `to ${peer}: ${it.text}` : `from ${peer}: ${it.text}`, 'dm', peer);
        renderSidebar();
      }
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
      const parts = m.rooms.map((x) => `${x.name} (${x.members})`);
      noteHere(parts.length ? `Rooms: ${parts.join(', ')}` : 'No rooms.', 'info');
    },

    info(m) { noteHere(String(m.text), 'info'); },
  };

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
    el.input.disabled = !online;
    el.send.disabled = !online;
    el.joinName.disabled = !online;
    el.leaveButton.disabled = !online;
    el.banner.hidden = online || !S.everWelcomed;
    el.composer.classList.toggle('disabled', !online);
    tickBanner();
  }

  function tickBanner() {
    clearTimeout(S.tickTimer);
    if (!S.everWelcomed || S.welcomed) return;
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
    if (!name) {
      el.loginError.textContent = 'Please enter a name.';
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
  window.addEventListener('online', () => { if (!S.ws) reconnectNow(); });

  // ---- views ----
  function isViewing(kind, name) { return !!S.view && S.view.kind === kind && S.view.name === name; }

  function switchTo(kind, name) {
    const v = kind === 'room' ? S.rooms.get(name) : S.dms.get(name);
    if (!v) return;
    S.view = { kind, name };
    if (kind === 'room') { S.lastRoom = name; if (S.pendingSwitch === name) S.pendingSwitch = null; }
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

  function renderHeader() {
    const v = currentModel();
    if (!v) {
      el.viewTitle.textContent = 'No room';
      el.viewSub.textContent = 'Join a room from the list or type /join NAME';
      el.leaveButton.hidden = true;
      return;
    }
    el.leaveButton.hidden = false;
    if (v.kind === 'room') {
      el.viewTitle.textContent = `# ${v.name}`;
      el.viewSub.textContent = `${v.members.length} ${v.members.length === 1 ? 'person' : 'people'}`;
      el.leaveButton.textContent = 'Leave';
      el.leaveButton.setAttribute('aria-label', `Leave room ${v.name}`);
      el.input.placeholder = narrow.matches
        ? `Message #${v.name}` : `Message #${v.name} — Enter to send, Shift+Enter for a new line, /help for commands`;
    } else {
      el.viewTitle.textContent = `DM · ${v.name}`;
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
    document.title = total ? `(${total}) confab` : 'confab';
  }

  function renderMembers() {
    const v = currentModel();
    if (!v || v.kind !== 'room') { el.membersSection.hidden = true; return; }
    el.membersSection.hidden = false;
    el.membersTitle.textContent = `People in #${v.name} (${v.members.length})`;
    el.memberList.replaceChildren(...v.members.map((name) => {
      const li = document.createElement('li');
      li.dataset.name = name;
      if (name === S.name) {
        li.textContent = name;
        const you = document.createElement('span');
        you.className = 'muted';
        you.textContent = ' (you)';
        li.append(you);
      } else {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'member';
        b.textContent = name;
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
    let t = '';
    if (names.length === 1) t = `${names[0]} is typing…`;
    else if (names.length === 2) t = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) t = 'Several people are typing…';
    el.typing.textContent = t;
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

  function renderItem(it) {
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
      t.textContent = it.text;
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
    from.textContent = it.action ? `* ${it.from}` : it.from;
    const sep = document.createElement('span');
    sep.className = 'visually-hidden';
    sep.textContent = it.action ? ' ' : ': ';
    const text = document.createElement('span');
    text.className = 'text';
    text.textContent = it.text;
    li.append(time, ' ', from, sep, text);
    return li;
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

  function appendToLog(it, force) {
    const stick = force || stuck || atBottom();
    el.log.append(renderItem(it));
    if (stick) scrollToBottom();
    else el.newMessages.hidden = false;
  }

  function renderView(jump) {
    const v = currentModel();
    const stick = jump || stuck || atBottom();
    const top = el.log.scrollTop;
    el.log.setAttribute('aria-busy', 'true');
    el.log.replaceChildren(...(v ? v.items.map(renderItem) : []));
    el.log.setAttribute('aria-busy', 'false');
    if (stick) scrollToBottom();
    else el.log.scrollTop = top;
  }

  el.log.addEventListener('scroll', () => {
    stuck = atBottom();
    if (stuck) el.newMessages.hidden = true;
  });
  if (window.ResizeObserver) new ResizeObserver(() => { if (stuck) scrollToBottom(); }).observe(el.log);
  el.newMessages.addEventListener('click', () => { scrollToBottom(); el.input.focus(); });

  // ---- composing ----
  function submit() {
    const text = el.input.value;
    if (!text.trim() || !S.welcomed) return;
    const v = currentModel();
    let ok;
    if (v && v.kind === 'dm' && !text.startsWith('/')) {
      ok = send({ type: 'dm', to: v.name, text });
    } else {
      const room = v && v.kind === 'room' ? v.name : S.lastRoom;
      const join = /^\/join\s+(\S+)/.exec(text);
      if (join) S.pendingSwitch = join[1];
      if (!room) {
        if (join) ok = send({ type: 'join', room: join[1] });
        else { noteHere('Join a room first: /join NAME', 'error'); return; }
      } else {
        ok = send({ type: 'say', room, text });
      }
    }
    if (ok) {
      el.input.value = '';
      autosize();
      if (v && v.kind === 'room') S.lastTypingSent.delete(v.name);
      scrollToBottom();
    }
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
    const v = currentModel();
    const t = el.input.value;
    if (!v || v.kind !== 'room' || !t.trim() || t.startsWith('/')) return;
    const last = S.lastTypingSent.get(v.name) || 0;
    if (Date.now() - last < TYPING_SEND_MS) return;
    if (send({ type: 'typing', room: v.name })) S.lastTypingSent.set(v.name, Date.now());
  });

  el.joinForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const room = el.joinName.value.trim().replace(/^#/, '');
    if (!room) return;
    if (S.rooms.has(room)) { switchTo('room', room); el.joinName.value = ''; return; }
    S.pendingSwitch = room;
    if (send({ type: 'join', room })) el.joinName.value = '';
  });

  el.leaveButton.addEventListener('click', () => {
    const v = currentModel();
    if (!v) return;
    if (v.kind === 'room') { send({ type: 'leave', room: v.name }); return; }
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
    const v = currentModel();
    if (!document.hidden && v && v.unread) { v.unread = 0; renderSidebar(); }
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
