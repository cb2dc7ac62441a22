-- confab_fake: a pure-Lua stand-in for the `confab` module of the C core (docs/hooks.md), so that a
-- busted spec can load a confab script and drive it without a server or a socket.
--
--   local confab_fake = require "confab_fake"
--   local fake = confab_fake.new{ history = 100 }:load("scripts/chat.lua")
--   local a = fake:connect{ path = "/ws" }            -- runs the connect hooks: id, or nil, reason
--   fake:message(a, '{"type":"hello","name":"alice"}') -- a table is JSON-encoded for you
--   fake:json(a)                                       -- what the script sent to a, decoded
--   fake:advance(2.5)                                  -- moves the clock, fires due timers
--   fake:disconnect(a, 1000)                           -- leave per room, then disconnect
--
-- It keeps the state the C core keeps (connections, rooms in join order, attributes, room history
-- rings, timers) and behaves like it: stale ids give nil, "no such connection"; wrong argument types
-- raise; hook calls are protected and their errors collected in `fake.errors` instead of failing
-- the spec; an endless loop in a hook is cut off by an instruction budget like --hook-timeout.
-- The script runs in the core's sandbox: require gives only confab, cjson and cjson.safe; no io,
-- no debug, os has only time/clock/date/difftime; assigning a new global after load raises.
-- `fake:reload()` loads the script afresh while the state lives on, like SIGHUP.
--
-- Not modelled: the memory cap, the WebSocket layer (frames, ping, queues), the real wall clock.

local cjson = require "cjson"

local M = {}

local Fake = {}
Fake.__index = Fake

local EVENTS = { connect = true, message = true, join = true, leave = true, disconnect = true,
                 reload = true }
local LEVELS = { debug = true, info = true, warn = true, error = true }
local NO_SUCH = "no such connection"
local ROOM_MAX_BYTES = 64
local CONNECT_FAILED = "the server's connect hook failed"

-- Argument checks, worded like luaL_argerror so that specs see the C core's kind of error.
local function arg_error(fname, n, msg)
  error(string.format("bad argument #%d to '%s' (%s)", n, fname, msg), 3)
end

local function check_integer(fname, n, v)
  local i = math.tointeger(type(v) == "string" and tonumber(v) or v)
  if not i then arg_error(fname, n, "integer expected, got " .. type(v)) end
  return i
end

local function check_string(fname, n, v)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then arg_error(fname, n, "string expected, got " .. type(v)) end
  return v
end

local function check_room(fname, n, v)
  v = check_string(fname, n, v)
  if #v == 0 or #v > ROOM_MAX_BYTES then
    arg_error(fname, n, "room name must be 1-" .. ROOM_MAX_BYTES .. " bytes")
  end
  return v
end

local function check_text(fname, data, binary)
  if not binary and not utf8.len(data) then
    error(string.format("bad argument #2 to '%s' (text frame is not valid UTF-8)", fname), 3)
  end
end

local function remove_value(list, v)
  for i = 1, #list do
    if list[i] == v then table.remove(list, i); return true end
  end
  return false
end

local function copy(list)
  return table.move(list, 1, #list, 1, {})
end

--- Creates a fake core. Options (all optional):
--   history = N            ring size per room (--history, default 100)
--   now = MS               start of the fake clock in ms (default 1700000000000)
--   epoch = E              confab.epoch (default: the start of the clock)
--   instruction_limit = N  VM instructions per hook call before it is aborted like a hook timeout
--                          (default 10,000,000; false disables)
--   strict = true          re-raise the first hook error at the end of the fake call that caused it
--   verbose = true         print confab.log lines and hook errors
function M.new(opts)
  opts = opts or {}
  local start = opts.now or 1700000000000
  local self = setmetatable({
    clock = start,
    epoch = opts.epoch or start,
    history_size = opts.history or 100,
    instruction_limit = opts.instruction_limit == nil and 10000000 or opts.instruction_limit,
    strict = opts.strict or false,
    verbose = opts.verbose or false,
    errors = {},      -- { event=, message=, traceback= } per failed hook or timer call
    logs = {},        -- { level=, message= } per confab.log call
    broadcasts = {},  -- { room=, data=, except=, binary=, recipients= } per confab.broadcast
    next_id = 1,
    conns = {},       -- id -> connection record (while it exists in the core)
    out = {},         -- id -> list of { data=, binary= } delivered to it (kept after it is gone)
    closed_by_script = {}, -- id -> { code=, reason= } when the script called confab.close
    rooms = {},       -- name -> { list = {ids in join order}, set = {id=true} }
    hist = {},        -- name -> { last=, dropped=, items = { {id=, data=}, ... } }
    timers = {},      -- active timers
    timer_seq = 0,
    depth = 0,        -- nesting of protected calls (hooks fired from inside hooks)
    pending_close = {},
  }, Fake)
  return self
end

-- One connection record; `state` is "connecting" (inside the connect hook), "open", "closing"
-- (the script called confab.close) or "gone" (inside its leave/disconnect hooks).
-- send, broadcast, join, leave and close need a connection that can still take frames:
local function usable(c)
  return c and (c.state == "open" or c.state == "connecting")
end

function Fake:_conn(id)
  local c = self.conns[id]
  if usable(c) then return c end
  return nil
end

-- Delivers one frame to a connection. Frames to a closing or departing connection are dropped.
function Fake:_deliver(c, data, binary)
  if not usable(c) then return false end
  local out = self.out[c.id]
  out[#out + 1] = { data = data, binary = binary or false }
  return true
end

-- Runs fn(...) like the core's one protected helper: errors are recorded, not raised.
function Fake:_protect(what, fn, ...)
  local outer = self.depth == 0
  local saved
  if outer and self.instruction_limit then
    saved = table.pack(debug.gethook())
    debug.sethook(function() error("hook timeout in " .. what, 2) end, "", self.instruction_limit)
  end
  self.depth = self.depth + 1
  local res = table.pack(xpcall(fn, function(e)
    return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
  end, ...))
  self.depth = self.depth - 1
  if outer and self.instruction_limit then
    if saved[1] then debug.sethook(saved[1], saved[2], saved[3]) else debug.sethook() end
  end
  if not res[1] then
    local e = res[2]
    e.event = what
    self.errors[#self.errors + 1] = e
    self.logs[#self.logs + 1] = { level = "error", message = what .. ": " .. e.message }
    if self.verbose then io.stderr:write("confab_fake: ", e.traceback, "\n") end
    return false
  end
  return true, table.unpack(res, 2, res.n)
end

-- Calls the current script's handlers for an event: descending priority, ties in registration
-- order, the first non-nil return ends the chain. Returns that return as a packed table, or nil.
function Fake:_fire(name, ev)
  local list = self.gen and self.gen.handlers[name]
  if not list or #list == 0 then return nil end
  list = copy(list)
  local ok, result = self:_protect(name, function()
    for _, h in ipairs(list) do
      local r = table.pack(h.fn(ev))
      if r[1] ~= nil then return r end
    end
  end)
  if ok then return result end
  return nil
end

-- Work that the core does "later", at a safe point between events: closes requested by the script.
-- Also where `strict` raises the errors the top-level call produced.
function Fake:_settle(errors_before)
  if self.depth > 0 then return end
  while #self.pending_close > 0 do
    local p = table.remove(self.pending_close, 1)
    if self.conns[p.id] then self:_drop(p.id, p.code, p.reason) end
  end
  if self.strict and errors_before and #self.errors > errors_before then
    error("hook error: " .. self.errors[errors_before + 1].traceback, 3)
  end
end

function Fake:_leave(c, room, reason)
  local r = self.rooms[room]
  if not r or not r.set[c.id] then return false end
  r.set[c.id] = nil
  remove_value(r.list, c.id)
  if #r.list == 0 then self.rooms[room] = nil end
  remove_value(c.rooms, room)
  self:_fire("leave", { id = c.id, room = room, reason = reason })
  return true
end

-- The connection goes away: one leave per room (the last joined first, as the core does), then
-- disconnect, then it is gone. Attributes stay readable in those hooks.
function Fake:_drop(id, code, reason)
  local c = self.conns[id]
  if not c then return nil, NO_SUCH end
  local was_open = c.state ~= "connecting"
  c.state = "gone"
  for i = #c.rooms, 1, -1 do self:_leave(c, c.rooms[i], "disconnect") end
  if was_open then
    self:_fire("disconnect", { id = id, code = code or 1006, reason = reason or "" })
  end
  self.conns[id] = nil
  return true
end

-- The `confab` module one script generation sees. Handlers and timers belong to the generation;
-- everything else is the fake core's state and outlives reloads.
function Fake:_module(gen)
  local fake = self
  local confab = { epoch = self.epoch }

  function confab.on(name, fn, priority)
    name = check_string("on", 1, name)
    if not EVENTS[name] then arg_error("on", 1, "unknown event '" .. name .. "'") end
    if type(fn) ~= "function" then arg_error("on", 2, "function expected, got " .. type(fn)) end
    priority = priority == nil and 0 or check_integer("on", 3, priority)
    local list = gen.handlers[name] or {}
    gen.handlers[name] = list
    local at = #list + 1
    for i, h in ipairs(list) do
      if priority > h.priority then at = i; break end
    end
    table.insert(list, at, { fn = fn, priority = priority })
  end

  function confab.send(id, data, binary)
    id = check_integer("send", 1, id)
    data = check_string("send", 2, data)
    check_text("send", data, binary)
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    fake:_deliver(c, data, binary)
    return true
  end

  function confab.broadcast(room, data, except, binary)
    room = check_room("broadcast", 1, room)
    data = check_string("broadcast", 2, data)
    if except ~= nil then except = check_integer("broadcast", 3, except) end
    check_text("broadcast", data, binary)
    local r = fake.rooms[room]
    local n = 0
    if r then
      for _, id in ipairs(r.list) do
        if id ~= except and fake:_deliver(fake.conns[id], data, binary) then n = n + 1 end
      end
    end
    fake.broadcasts[#fake.broadcasts + 1] =
      { room = room, data = data, except = except, binary = binary or false, recipients = n }
    return n
  end

  function confab.close(id, code, reason)
    id = check_integer("close", 1, id)
    code = code == nil and 1000 or check_integer("close", 2, code)
    if reason ~= nil then reason = check_string("close", 3, reason) end
    if not ((code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
            or (code >= 3000 and code <= 4999)) then
      arg_error("close", 2, "not a close code a server may send")
    end
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    c.state = "closing"
    fake.closed_by_script[id] = { code = code, reason = reason or "" }
    fake.pending_close[#fake.pending_close + 1] = { id = id, code = code, reason = reason or "" }
    return true
  end

  function confab.join(id, room)
    id = check_integer("join", 1, id)
    room = check_room("join", 2, room)
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    local r = fake.rooms[room]
    if r and r.set[id] then return false end
    if #c.rooms >= 1024 then return nil, "too many rooms" end -- the core's HUB_ROOMS_PER_CONN
    if not r then
      r = { list = {}, set = {} }
      fake.rooms[room] = r
    end
    r.list[#r.list + 1] = id
    r.set[id] = true
    c.rooms[#c.rooms + 1] = room
    fake:_fire("join", { id = id, room = room })
    return true
  end

  function confab.leave(id, room)
    id = check_integer("leave", 1, id)
    room = check_room("leave", 2, room)
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    return fake:_leave(c, room, "leave")
  end

  function confab.members(room)
    room = check_room("members", 1, room)
    local r = fake.rooms[room]
    return r and copy(r.list) or {}
  end

  function confab.rooms()
    local t = {}
    for name, r in pairs(fake.rooms) do t[name] = #r.list end
    return t
  end

  function confab.rooms_of(id)
    id = check_integer("rooms_of", 1, id)
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    return copy(c.rooms)
  end

  function confab.set(id, key, value)
    id = check_integer("set", 1, id)
    key = check_string("set", 2, key)
    local tv = type(value)
    if not (tv == "string" or tv == "number" or tv == "boolean" or tv == "nil") then
      arg_error("set", 3, "string, number, boolean or nil expected, got " .. tv)
    end
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    if value ~= nil and c.attrs[key] == nil then
      local n = 0
      for _ in pairs(c.attrs) do n = n + 1 end
      if n >= 256 then return nil, "too many attributes" end -- the core's HUB_ATTRS_PER_CONN
    end
    c.attrs[key] = value
    return true
  end

  function confab.get(id, key)
    id = check_integer("get", 1, id)
    key = check_string("get", 2, key)
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    return c.attrs[key]
  end

  function confab.connections()
    local ids = {}
    for id, c in pairs(fake.conns) do
      if c.state == "open" then ids[#ids + 1] = id end
    end
    table.sort(ids)
    return ids
  end

  function confab.info(id)
    id = check_integer("info", 1, id)
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    return { remote = c.remote, path = c.path, query = c.query, subprotocol = c.subprotocol }
  end

  function confab.history_add(room, hid, data)
    room = check_room("history_add", 1, room)
    hid = check_integer("history_add", 2, hid)
    if hid <= 0 then arg_error("history_add", 2, "id must be positive") end
    data = check_string("history_add", 3, data)
    local h = fake.hist[room]
    if not h then
      h = { last = 0, dropped = 0, items = {} }
      fake.hist[room] = h
    end
    if hid <= h.last then
      error(string.format("history_add: id %d is not greater than the last id %d of room '%s'",
                          hid, h.last, room), 2)
    end
    h.last = hid
    h.items[#h.items + 1] = { id = hid, data = data }
    while #h.items > fake.history_size do
      h.dropped = table.remove(h.items, 1).id
    end
    return true
  end

  function confab.history_last(room)
    room = check_room("history_last", 1, room)
    local h = fake.hist[room]
    return h and h.last or 0
  end

  function confab.history(room, after)
    room = check_room("history", 1, room)
    after = after == nil and 0 or check_integer("history", 2, after)
    local h = fake.hist[room]
    if not h then return {}, true end
    local list = {}
    for _, item in ipairs(h.items) do
      if item.id > after then list[#list + 1] = item.data end
    end
    return list, after >= h.dropped
  end

  function confab.now()
    return fake.clock
  end

  function confab.log(level, fmt, ...)
    level = check_string("log", 1, level)
    if not LEVELS[level] then arg_error("log", 1, "invalid level '" .. level .. "'") end
    fmt = check_string("log", 2, fmt)
    local line = string.format(fmt, ...)
    fake.logs[#fake.logs + 1] = { level = level, message = line }
    if fake.verbose then io.stderr:write("confab_fake [", level, "] ", line, "\n") end
  end

  local function timer(fname, seconds, fn, repeating)
    if type(seconds) ~= "number" or seconds < 0 or seconds >= 1e8 then
      arg_error(fname, 1, "seconds out of range")
    end
    if repeating and seconds < 0.001 then arg_error(fname, 1, "interval must be at least 0.001") end
    if type(fn) ~= "function" then arg_error(fname, 2, "function expected, got " .. type(fn)) end
    local ms = math.floor(seconds * 1000 + 0.5)
    if repeating and ms == 0 then ms = 1 end
    fake.timer_seq = fake.timer_seq + 1
    local t = { due = fake.clock + ms, every = repeating and ms or nil, fn = fn, gen = gen,
                seq = fake.timer_seq, active = true }
    fake.timers[#fake.timers + 1] = t
    return { cancel = function() t.active = false end }
  end

  -- Like src/urldecode.c: "%XX" becomes a byte, "+" a space when form is true.
  function confab.urldecode(str, form)
    str = check_string("urldecode", 1, str)
    for pos in str:gmatch("()%%") do
      if not str:find("^%x%x", pos + 1) then return nil, "bad escape" end
    end
    if form then str = str:gsub("+", " ") end   -- first, so that "%2B" stays "+"
    return (str:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end

  function confab.after(seconds, fn) return timer("after", seconds, fn, false) end
  function confab.every(seconds, fn) return timer("every", seconds, fn, true) end

  return confab
end

-- The globals of a script, like the core's sandbox (src/script.c setup_state).
function Fake:_sandbox(gen)
  local fake = self
  local env = {}
  for _, k in ipairs{ "assert", "error", "getmetatable", "ipairs", "next", "pairs", "pcall",
                      "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable",
                      "tonumber", "tostring", "type", "xpcall", "_VERSION" } do
    env[k] = _G[k]
  end
  env.string, env.table, env.math, env.utf8, env.coroutine =
    string, table, math, utf8, coroutine
  env.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
  env.confab = gen.confab
  env._G = env
  local modules = { confab = gen.confab, cjson = cjson, ["cjson.safe"] = require "cjson.safe" }
  function env.require(name)
    local m = modules[name]
    if m == nil then
      error(string.format("module '%s' is not available (allowed: confab, cjson, cjson.safe)",
                          tostring(name)), 2)
    end
    return m
  end
  function env.load(chunk, name, mode, e)
    if mode ~= nil and mode ~= "t" then error("load: only text chunks are allowed (mode 't')", 2) end
    return load(chunk, name, "t", e == nil and env or e)
  end
  function env.collectgarbage(opt, ...)
    opt = opt or "collect"
    if not ({ collect = true, count = true, step = true, isrunning = true })[opt] then
      error("bad argument #1 to 'collectgarbage' (invalid option '" .. tostring(opt) .. "')", 2)
    end
    return collectgarbage(opt, ...)
  end
  function env.print(...)
    local parts = table.pack(...)
    for i = 1, parts.n do parts[i] = tostring(parts[i]) end
    fake.logs[#fake.logs + 1] = { level = "info", message = table.concat(parts, "\t", 1, parts.n) }
  end
  -- New globals may be declared while the script loads; afterwards assigning one is a typo.
  setmetatable(env, {
    __newindex = function(t, k, v)
      if not gen.loading then
        error(string.format("assignment to undeclared global '%s' (declare it at load time or "
                            .. "use a local)", tostring(k)), 2)
      end
      rawset(t, k, v)
    end,
    __metatable = "the global table is protected",
  })
  return env
end

-- Runs a script file in a fresh generation. Returns the generation, or nil and the error.
function Fake:_instantiate(path)
  local gen = { handlers = {}, path = path }
  gen.confab = self:_module(gen)
  gen.env = self:_sandbox(gen)
  local chunk, err = loadfile(path, "t", gen.env)
  if not chunk then return nil, err end
  gen.loading = true
  local ok, res = xpcall(chunk, debug.traceback)
  gen.loading = false
  if not ok then return nil, res end
  gen.result = res
  return gen
end

--- Loads the script as the server does at start: raises if it does not load. Returns the fake.
function Fake:load(path)
  local gen, err = self:_instantiate(path)
  if not gen then error("confab_fake: cannot load " .. path .. ": " .. tostring(err), 2) end
  self.gen = gen
  self.confab = gen.confab
  self.script = gen.result
  return self
end

--- A hot reload (SIGHUP): a fresh load of `path` (default: the loaded file) keeping every
-- connection, room, attribute and history; old timers are cancelled and the `reload` hook runs in
-- the new script. On a load error the old script stays and nil, err is returned (and recorded).
function Fake:reload(path)
  path = path or (self.gen and self.gen.path)
  local before = #self.errors
  local gen, err = self:_instantiate(path)
  if not gen then
    self.errors[#self.errors + 1] = { event = "reload", message = tostring(err),
                                      traceback = tostring(err) }
    self.logs[#self.logs + 1] = { level = "error", message = "reload: " .. tostring(err) }
    return nil, err
  end
  for _, t in ipairs(self.timers) do
    if t.gen == self.gen then t.active = false end
  end
  self.gen = gen
  self.confab = gen.confab
  self.script = gen.result
  self:_fire("reload", {})
  self:_settle(before)
  return true
end

--- A client opens a WebSocket. Options: path ("/ws"), query (""), headers (any case; the hook sees
-- lower-case names), remote ("127.0.0.1:PORT"), subprotocol. Returns the new id, or nil and the
-- refusal reason when a connect hook returned false.
function Fake:connect(opts)
  opts = opts or {}
  local before = #self.errors
  local id = self.next_id
  self.next_id = id + 1
  local headers = {}
  for k, v in pairs(opts.headers or {}) do headers[string.lower(k)] = v end
  local c = { id = id, state = "connecting", path = opts.path or "/ws", query = opts.query or "",
              remote = opts.remote or ("127.0.0.1:" .. (40000 + id)),
              subprotocol = opts.subprotocol, attrs = {}, rooms = {} }
  self.conns[id] = c
  self.out[id] = {}
  local r = self:_fire("connect", { id = id, path = c.path, query = c.query, headers = headers,
                                     remote = c.remote, subprotocol = c.subprotocol })
  local failed = #self.errors > before
  if failed or (r and r[1] == false) then
    -- Refused before the 101 (403, or 500 when the hook failed): nothing reaches the client, no
    -- disconnect hook.
    c.state = "gone"
    for i = #c.rooms, 1, -1 do self:_leave(c, c.rooms[i], "disconnect") end
    self.conns[id] = nil
    self.out[id] = {}
    self:_settle(before)
    if failed then return nil, CONNECT_FAILED end
    return nil, type(r[2]) == "string" and r[2] or "connection refused by the server"
  end
  if c.state == "connecting" then c.state = "open" end
  self:_settle(before)
  return id
end

--- A client sends one frame. `data` is a string, or a table that is JSON-encoded first.
-- Returns true, or nil, "no such connection".
function Fake:message(id, data, binary)
  if type(data) == "table" then data = cjson.encode(data) end
  assert(type(data) == "string", "confab_fake: message data must be a string or a table")
  if not binary and not utf8.len(data) then
    error("confab_fake: a text frame must be valid UTF-8 (the core closes with 1007)", 2)
  end
  local c = self:_conn(id)
  if not c or c.state == "connecting" then return nil, NO_SUCH end
  local before = #self.errors
  self:_fire("message", { id = id, data = data, binary = binary or false })
  self:_settle(before)
  return true
end

--- The client goes away (close frame `code`, default 1006 = no close frame). Fires one leave per
-- room with reason "disconnect", then disconnect. Returns true, or nil, "no such connection".
function Fake:disconnect(id, code, reason)
  local before = #self.errors
  local ok, err = self:_drop(id, code, reason)
  self:_settle(before)
  return ok, err
end

--- Moves the fake clock forward, firing every timer that falls due, in time order.
-- Returns the number of timer callbacks run.
function Fake:advance(seconds)
  local target = self.clock + math.floor((seconds or 0) * 1000 + 0.5)
  local before = #self.errors
  local fired = 0
  while true do
    local best, best_i
    for i, t in ipairs(self.timers) do
      if t.active and t.due <= target and (not best or t.due < best.due
          or (t.due == best.due and t.seq < best.seq)) then
        best, best_i = t, i
      end
    end
    if not best then break end
    if best.due > self.clock then self.clock = best.due end
    if best.every then
      best.due = best.due + best.every
    else
      best.active = false
      table.remove(self.timers, best_i)
    end
    fired = fired + 1
    assert(fired < 1000000, "confab_fake: runaway timers")
    self:_protect("timer", best.fn)
    self:_settle()
  end
  local live = {}
  for _, t in ipairs(self.timers) do if t.active then live[#live + 1] = t end end
  self.timers = live
  self.clock = target
  self:_settle(before)
  return fired
end

--- The fake clock in ms (what confab.now() returns).
function Fake:now()
  return self.clock
end

--- True while the connection exists in the core.
function Fake:connected(id)
  return self:_conn(id) ~= nil
end

--- The code and reason of a confab.close the script made on id, or nil.
function Fake:closed(id)
  local c = self.closed_by_script[id]
  if c then return c.code, c.reason end
  return nil
end

--- Frames delivered to id so far: a list of { data=, binary= }.
function Fake:frames(id)
  return copy(self.out[id] or {})
end

--- Messages delivered to id so far, as a list of strings.
function Fake:sent(id)
  local list = {}
  for _, f in ipairs(self.out[id] or {}) do list[#list + 1] = f.data end
  return list
end

--- The text messages delivered to id, JSON-decoded; only those with `type` == kind if given.
function Fake:json(id, kind)
  local list = {}
  for _, f in ipairs(self.out[id] or {}) do
    if not f.binary then
      local ok, v = pcall(cjson.decode, f.data)
      if not ok then error("confab_fake: message to " .. id .. " is not JSON: " .. f.data, 2) end
      if kind == nil or (type(v) == "table" and v.type == kind) then list[#list + 1] = v end
    end
  end
  return list
end

--- The last decoded message delivered to id (of type `kind` if given), or nil.
function Fake:last(id, kind)
  local list = self:json(id, kind)
  return list[#list]
end

--- Forgets what was delivered (to id only, or to everyone plus the broadcast log).
function Fake:clear(id)
  if id ~= nil then
    if self.out[id] then self.out[id] = {} end
    return
  end
  for k in pairs(self.out) do self.out[k] = {} end
  self.broadcasts = {}
end

return M
