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
-- `memory = BYTES` models --script-memory (an estimate: see docs/hooks.md, "The testing kit").
-- spec/support/api_probes.lua keeps the fake's API outcomes equal to the core's (the integration
-- test runs both). Not modelled: the WebSocket layer (frames, ping, queues), the real wall clock,
-- and the rest listed in docs/hooks.md.

local cjson = require "cjson"

local M = {}

local guard_cjson

local Fake = {}
Fake.__index = Fake

local EVENTS = { connect = true, message = true, join = true, leave = true, disconnect = true,
                 reload = true, epoch = true, roster = true }
local LEVELS = { debug = true, info = true, warn = true, error = true }
local NO_SUCH = "no such connection"
local ROOM_MAX_BYTES = 64      -- the core's HUB_ROOM_NAME_MAX
local ROOMS_PER_CONN = 1024    -- HUB_ROOMS_PER_CONN
local ATTRS_PER_CONN = 256     -- HUB_ATTRS_PER_CONN
local CLAIM_KEY_MAX = 128       -- CLAIM_KEY_MAX (src/claims.h)
local CLAIM_VALUE_MAX = 256     -- CLAIM_VALUE_MAX
local CLAIMS_MAX = 100000       -- CLAIMS_MAX
local CONNECT_FAILED = "the server's connect hook failed"

-- Argument checks that behave like the core's lauxlib ones (luaL_check*, luaL_argerror): same
-- conversions (a number is a string, a numeric string is a number), same messages, and the error
-- carries the position of the script's call. `n` is the number of arguments passed (from
-- select("#", ...)), so that a missing argument is "no value" as in C.
local THIS_FILE = debug.getinfo(1, "S").source

-- Raises msg with the position of the first caller outside this file (the script's call of the
-- API), as luaL_error in a C function does; none when that caller is a C function (e.g. pcall).
local function raise(msg)
  local level = 2
  while true do
    local info = debug.getinfo(level, "S")
    if not info or info.source ~= THIS_FILE then break end
    level = level + 1
  end
  error(msg, level)
end

local function arg_error(fname, i, msg)
  raise(string.format("bad argument #%d to '%s' (%s)", i, fname, msg))
end

local function typename(n, i, v)
  if i > n then return "no value" end
  return type(v)
end

local function type_error(fname, i, n, v, expected)
  arg_error(fname, i, expected .. " expected, got " .. typename(n, i, v))
end

-- luaL_checkinteger
local function check_integer(fname, i, n, v)
  local num = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if num == nil then type_error(fname, i, n, v, "number") end
  local int = math.tointeger(num)
  if not int then
    arg_error(fname, i, "number has no integer representation")
  end
  return int
end

-- luaL_optinteger: nil or absent gives def
local function opt_integer(fname, i, n, v, def)
  if v == nil then return def end
  return check_integer(fname, i, n, v)
end

-- luaL_checknumber
local function check_number(fname, i, n, v)
  local num = (type(v) == "number" or type(v) == "string") and tonumber(v) or nil
  if num == nil then type_error(fname, i, n, v, "number") end
  return num
end

-- luaL_checklstring
local function check_string(fname, i, n, v)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then type_error(fname, i, n, v, "string") end
  return v
end

-- luaL_checkoption with no default
local function check_option(fname, i, n, v, set)
  v = check_string(fname, i, n, v)
  if not set[v] then
    arg_error(fname, i, "invalid option '" .. v .. "'")
  end
  return v
end

local function check_room(fname, i, n, v)
  v = check_string(fname, i, n, v)
  if #v == 0 or #v > ROOM_MAX_BYTES then
    arg_error(fname, i, "room name must be 1 to " .. ROOM_MAX_BYTES .. " bytes")
  end
  if v:find("\0", 1, true) then arg_error(fname, i, "room name must not contain NUL") end
  return v
end

local function check_key(fname, i, n, v)
  v = check_string(fname, i, n, v)
  if v:find("\0", 1, true) then arg_error(fname, i, "key must not contain NUL") end
  return v
end

local function check_text(fname, i, data, binary)
  if not binary and not utf8.len(data) then
    arg_error(fname, i, "text must be valid UTF-8 (send binary instead)")
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
--   memory = BYTES         cap of what the script holds, like --script-memory (default: no cap);
--                          past it the script gets "not enough memory" errors (an estimate)
--   attr_memory = BYTES    --attr-memory: all attributes together (default 16 MiB)
--   strict = true          re-raise the first hook error at the end of the fake call that caused it
--   verbose = true         print confab.log lines and hook errors
function M.new(opts)
  opts = opts or {}
  local start = opts.now or 1700000000000
  local self = setmetatable({
    clock = start,
    epoch = opts.epoch or start,
    history_size = opts.history or 100,
    memory = opts.memory,           -- --script-memory in bytes, or nil: not modelled
    attr_memory = opts.attr_memory or 16 * 1024 * 1024,
    attr_bytes = 0,
    instruction_limit = opts.instruction_limit == nil and 10000000 or opts.instruction_limit,
    strict = opts.strict or false,
    verbose = opts.verbose or false,
    errors = {},      -- { event=, message=, traceback= } per failed hook or timer call
    logs = {},        -- { level=, message= } per confab.log call
    broadcasts = {},  -- { room=, data=, except=, binary=, recipients= } per confab.broadcast
    posts = {},       -- { room=, id=, data=, recipients= } per confab.post
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
    node = 0,         -- confab.node()
    claims = {},      -- key -> { value=, node= } (shared by the nodes of a cluster)
    claim_count = 0,
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

-- ---- limits: --hook-timeout and --script-memory -------------------------------------------
-- A protected run (a hook call, a timer, the load) has an instruction budget standing in for
-- --hook-timeout and, with the option `memory`, a cap standing in for --script-memory. The fake
-- shares its Lua state with busted, so what the script holds is an estimate: the growth of
-- collectgarbage("count") during its runs (after a full collection), summed over its runs since
-- it was loaded. It is checked every MEM_STEP instructions and before string.rep; past the cap the
-- run raises "not enough memory" (no position), as a failed allocation in the core does.
local MEM_STEP = 1000
local NO_MEMORY = "not enough memory"

local function heap() return collectgarbage("count") * 1024 end

-- Whether the script would hold more than the cap with extra more bytes (collecting first).
function Fake:_mem_over(extra)
  local run = self.mem_run
  if not run then return false end
  local function used() return run.gen.bytes + heap() - run.base + (extra or 0) end
  if used() <= self.memory then return false end
  collectgarbage("collect")
  return used() > self.memory
end

-- Runs fn(...) under the limits (budget: instructions); returns xpcall's results, packed.
function Fake:_limited(what, gen, budget, handler, fn, ...)
  local mem = self.memory
  local step = mem and MEM_STEP or budget
  if budget and budget < step then step = budget end
  local saved = table.pack(debug.gethook())
  if mem then
    collectgarbage("collect")
    self.mem_run = { gen = gen, base = heap() }
  end
  if step then
    local ran = 0
    debug.sethook(function()
      ran = ran + step
      if budget and ran >= budget then error("hook timeout in " .. what, 2) end
      if mem and self:_mem_over() then error(NO_MEMORY, 0) end
    end, "", step)
  end
  -- The handler runs with the limits off: the failed run's memory is still on its stack.
  local res = table.pack(xpcall(fn, function(e)
    if step then debug.sethook() end
    return handler(e)
  end, ...))
  if step then
    if saved[1] then debug.sethook(saved[1], saved[2], saved[3]) else debug.sethook() end
  end
  -- Seen with Lua 5.4.4: the message handler is not called for this error when the count hook
  -- raises it (cause not pinned down): hand it to the handler here, without the script's
  -- traceback.
  if not res[1] and res[2] == NO_MEMORY then
    res[2] = handler(res[2])
  end
  if mem then
    collectgarbage("collect")
    gen.bytes = math.max(0, gen.bytes + heap() - self.mem_run.base)
    self.mem_run = nil
  end
  return res
end

-- Runs fn(...) like the core's one protected helper: errors are recorded, not raised.
function Fake:_protect(what, fn, ...)
  local handler = function(e)
    return { message = tostring(e), traceback = debug.traceback(tostring(e), 2) }
  end
  local res
  self.depth = self.depth + 1
  if self.depth == 1 then
    res = self:_limited(what, self.gen, self.instruction_limit, handler, fn, ...)
  else
    res = table.pack(xpcall(fn, handler, ...))
  end
  self.depth = self.depth - 1
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
  if self.fire_on then return self.fire_on:_fire(name, ev) end
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
    if self.conns[p.id] then self:_drop(p.id, p.code) end
  end
  if self.cluster then self.cluster:_settle() end
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
  self:_roster(room)
  self:_fire("leave", { id = c.id, room = room, reason = reason })
  return true
end

-- A cluster: the other live nodes hear that this node's members of room changed (their `roster`
-- hooks), before the frames that announce it (as the core applies another node's state first).
function Fake:_roster(room)
  for _, node in ipairs(self:_others()) do
    if node ~= self.fire_on then node:_fire("roster", { room = room, sync = false }) end
  end
end

-- The connection goes away: one leave per room (the last joined first, as the core does), then
-- disconnect, then it is gone. Attributes stay readable in those hooks.
-- The disconnect hook's reason is the core's text for the close code (src/server.c), not the
-- peer's reason.
local CLOSE_TEXT = { [1000] = "normal closure", [1001] = "going away", [1002] = "protocol error",
                     [1005] = "no status", [1006] = "connection lost", [1007] = "invalid UTF-8",
                     [1008] = "policy violation", [1009] = "message too big",
                     [1011] = "server error" }

function Fake:_drop(id, code)
  local c = self.conns[id]
  if not c then return nil, NO_SUCH end
  local was_open = c.state ~= "connecting"
  c.state = "gone"
  for i = #c.rooms, 1, -1 do self:_leave(c, c.rooms[i], "disconnect") end
  if was_open then
    code = code or 1006
    self:_fire("disconnect", { id = id, code = code, reason = CLOSE_TEXT[code] or "closed" })
  end
  self.conns[id] = nil
  return true
end

-- The `confab` module one script generation sees. Handlers and timers belong to the generation;
-- everything else is the fake core's state and outlives reloads. Argument checks come in the
-- core's order (src/confab_lib.c), so that a call with two bad arguments fails on the same one;
-- spec/support/api_probes.lua holds both to the same outcomes.
local TIMER_META = "confab.timer"

function Fake:_module(gen)
  local fake = self
  local confab = { epoch = self.epoch }

  function confab.on(...)
    local n, name, fn, priority = select("#", ...), ...
    check_option("on", 1, n, name, EVENTS)
    if type(fn) ~= "function" then type_error("on", 2, n, fn, "function") end
    priority = opt_integer("on", 3, n, priority, 0)
    -- Later, a hook being dispatched would see its list move under it.
    -- (From the spec itself, outside any hook, a handler may still be added: the way an
    -- extension loaded with the script would have added it.)
    if not gen.loading and fake.depth > 0 then
      raise("confab.on: hooks can only be registered while the script loads")
    end
    local list = gen.handlers[name] or {}
    gen.handlers[name] = list
    local at = #list + 1
    for i, h in ipairs(list) do
      if priority > h.priority then at = i; break end
    end
    table.insert(list, at, { fn = fn, priority = priority })
  end

  function confab.send(...)
    local n, id, data, binary = select("#", ...), ...
    id = check_integer("send", 1, n, id)
    data = check_string("send", 2, n, data)
    check_text("send", 2, data, binary)
    local other = fake:_remote(id)
    if other then
      other:_deliver(other.conns[id], data, binary)   -- forwarded: true whatever happens there
      return true
    end
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    fake:_deliver(c, data, binary)
    return true
  end

  function confab.broadcast(...)
    local n, room, data, except, binary = select("#", ...), ...
    room = check_room("broadcast", 1, n, room)
    data = check_string("broadcast", 2, n, data)
    except = opt_integer("broadcast", 3, n, except, nil)
    check_text("broadcast", 2, data, binary)
    local r = fake.rooms[room]
    local count = 0
    if r then
      for _, id in ipairs(r.list) do
        if id ~= except and fake:_deliver(fake.conns[id], data, binary) then count = count + 1 end
      end
    end
    for _, other in ipairs(fake:_others()) do
      local ro = other.rooms[room]
      for _, id in ipairs(ro and ro.list or {}) do
        if id ~= except then other:_deliver(other.conns[id], data, binary) end
      end
    end
    fake.broadcasts[#fake.broadcasts + 1] =
      { room = room, data = data, except = except, binary = binary or false, recipients = count }
    return count
  end

  function confab.close(...)
    local n, id, code, reason = select("#", ...), ...
    id = check_integer("close", 1, n, id)
    code = opt_integer("close", 2, n, code, 1000)
    reason = reason == nil and "" or check_string("close", 3, n, reason)
    if not ((code >= 1000 and code <= 1003) or (code >= 1007 and code <= 1014)
            or (code >= 3000 and code <= 4999)) then
      arg_error("close", 2, "not a close code a server may send")
    end
    local other = fake:_remote(id)
    if other then
      local c = other:_conn(id)
      if c then
        c.state = "closing"
        other.closed_by_script[id] = { code = code, reason = reason }
        other.pending_close[#other.pending_close + 1] = { id = id, code = code, reason = reason }
        fake.cluster.closing[#fake.cluster.closing + 1] = other
      end
      return true
    end
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    c.state = "closing"
    fake.closed_by_script[id] = { code = code, reason = reason }
    fake.pending_close[#fake.pending_close + 1] = { id = id, code = code, reason = reason }
    return true
  end

  function confab.join(...)
    local n, id, room = select("#", ...), ...
    id = check_integer("join", 1, n, id)
    room = check_room("join", 2, n, room)
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    local r = fake.rooms[room]
    if r and r.set[id] then return false end
    if #c.rooms >= ROOMS_PER_CONN then return nil, "too many rooms" end
    if not r then
      r = { list = {}, set = {} }
      fake.rooms[room] = r
    end
    r.list[#r.list + 1] = id
    r.set[id] = true
    c.rooms[#c.rooms + 1] = room
    fake:_roster(room)
    fake:_fire("join", { id = id, room = room })
    return true
  end

  function confab.leave(...)
    local n, id, room = select("#", ...), ...
    id = check_integer("leave", 1, n, id)
    room = check_room("leave", 2, n, room)
    local c = fake:_conn(id)
    if not c then return nil, NO_SUCH end
    return fake:_leave(c, room, "leave")
  end

  function confab.members(...)
    local n, room = select("#", ...), ...
    room = check_room("members", 1, n, room)
    local list = {}
    for _, node in ipairs(fake:_all()) do
      local r = node.rooms[room]
      table.move(r and r.list or {}, 1, r and #r.list or 0, #list + 1, list)
    end
    return list
  end

  function confab.rooms()
    local t = {}
    for _, node in ipairs(fake:_all()) do
      for name, r in pairs(node.rooms) do t[name] = (t[name] or 0) + #r.list end
    end
    return t
  end

  function confab.rooms_of(...)
    local n, id = select("#", ...), ...
    id = check_integer("rooms_of", 1, n, id)
    local c = (fake:_remote(id) or fake).conns[id]
    if not c then return nil, NO_SUCH end
    return copy(c.rooms)
  end

  function confab.set(...)
    local n, id, key, value = select("#", ...), ...
    id = check_integer("set", 1, n, id)
    key = check_key("set", 2, n, key)
    local tv = n >= 3 and type(value) or "no value"
    if not (tv == "string" or tv == "number" or tv == "boolean" or tv == "nil") then
      arg_error("set", 3, "value must be a string, number, boolean or nil")
    end
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    if value == nil then
      fake:_attr_account(c, key, nil)
      c.attrs[key] = nil
      for _, room in ipairs(c.rooms) do fake:_roster(room) end
      return true
    end
    if c.attrs[key] == nil then
      local count = 0
      for _ in pairs(c.attrs) do count = count + 1 end
      if count >= ATTRS_PER_CONN then return nil, "too many attributes" end
    end
    if not fake:_attr_account(c, key, value) then return nil, "attribute memory limit reached" end
    c.attrs[key] = value
    for _, room in ipairs(c.rooms) do fake:_roster(room) end
    return true
  end

  function confab.get(...)
    local n, id, key = select("#", ...), ...
    id = check_integer("get", 1, n, id)
    key = check_key("get", 2, n, key)
    local c = (fake:_remote(id) or fake).conns[id]
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

  function confab.info(...)
    local n, id = select("#", ...), ...
    id = check_integer("info", 1, n, id)
    local c = fake.conns[id]
    if not c then return nil, NO_SUCH end
    return { remote = c.remote, path = c.path, query = c.query, subprotocol = c.subprotocol }
  end

  function confab.history_add(...)
    local n, room, hid, data = select("#", ...), ...
    room = check_room("history_add", 1, n, room)
    hid = check_integer("history_add", 2, n, hid)
    data = check_string("history_add", 3, n, data)
    if hid <= 0 then arg_error("history_add", 2, "id must be positive") end
    local h = fake.hist[room]
    if not h then
      h = { last = 0, dropped = 0, items = {} }
      fake.hist[room] = h
    end
    if hid <= h.last then
      raise(string.format("history id %d is not above the room's last id %d", hid, h.last))
    end
    h.last = hid
    h.items[#h.items + 1] = { id = hid, data = data }
    while #h.items > fake.history_size do
      h.dropped = table.remove(h.items, 1).id
    end
    return true
  end

  function confab.history_last(...)
    local n, room = select("#", ...), ...
    room = check_room("history_last", 1, n, room)
    local h = fake.hist[room]
    return h and h.last or 0
  end

  function confab.history(...)
    local n, room, after = select("#", ...), ...
    room = check_room("history", 1, n, room)
    after = math.max(0, opt_integer("history", 2, n, after, 0))
    local h = fake.hist[room]
    if not h then return {}, true end
    local list = {}
    for _, item in ipairs(h.items) do
      if item.id > after then list[#list + 1] = item.data end
    end
    return list, after >= h.last or after >= h.dropped
  end

  -- confab.post and confab.replay as the core without --redis answers them: at once (the
  -- callback runs before the call returns, protected like a hook).
  function confab.post(...)
    local n, room, head, tail, done = select("#", ...), ...
    room = check_room("post", 1, n, room)
    head = check_string("post", 2, n, head)
    check_text("post", 2, head)
    tail = check_string("post", 3, n, tail)
    check_text("post", 3, tail)
    if done ~= nil and type(done) ~= "function" then type_error("post", 4, n, done, "function") end
    if fake.cluster then return fake.cluster:_post(fake, room, head, tail, done) end
    local mid = confab.history_last(room) + 1
    local data = head .. mid .. tail
    confab.history_add(room, mid, data)
    local r = fake.rooms[room]
    local count = 0
    if r then
      for _, id in ipairs(r.list) do
        if fake:_deliver(fake.conns[id], data, false) then count = count + 1 end
      end
    end
    fake.posts[#fake.posts + 1] = { room = room, id = mid, data = data, recipients = count }
    if done then fake:_protect("post callback", done, mid) end
    return true
  end

  function confab.replay(...)
    local n, room, after, fn = select("#", ...), ...
    room = check_room("replay", 1, n, room)
    after = check_integer("replay", 2, n, after)
    if after < 0 then arg_error("replay", 2, "after must be 0 or an id") end
    if type(fn) ~= "function" then type_error("replay", 3, n, fn, "function") end
    if fake.cluster then
      local list, complete = fake.cluster:_replay(room, after)
      fake:_protect("replay callback", fn, list, complete)
      return true
    end
    local list, complete = confab.history(room, after)
    complete = complete and after <= confab.history_last(room)
    if not complete then list = confab.history(room) end
    fake:_protect("replay callback", fn, list, complete)
    return true
  end

  function confab.now()
    return fake.clock
  end

  -- Formats like the core: string.format called from C, so its errors name 'string.format' and
  -- carry no position.
  function confab.log(...)
    local n, level, fmt = select("#", ...), ...
    level = check_option("log", 1, n, level, LEVELS)
    check_string("log", 2, n, fmt)
    local res = table.pack(pcall(string.format, select(2, ...)))
    if not res[1] then error(res[2], 0) end
    local line = res[2]
    fake.logs[#fake.logs + 1] = { level = level, message = line }
    if fake.verbose then io.stderr:write("confab_fake [", level, "] ", line, "\n") end
  end

  -- A timer handle: like the core's userdata, with cancel() and a locked metatable "confab.timer"
  -- (but type() says "table").
  local timer_mt
  local function check_timer(n, t)
    if getmetatable(t) ~= TIMER_META or not rawget(t, "_timer") then
      local got = typename(n, 1, t)
      if got ~= "no value" and getmetatable(t) ~= nil and type(getmetatable(t)) == "table"
         and type(getmetatable(t).__name) == "string" then
        got = getmetatable(t).__name
      end
      arg_error("cancel", 1, TIMER_META .. " expected, got " .. got)
    end
    return rawget(t, "_timer")
  end
  timer_mt = {
    __index = {
      cancel = function(...)
        local t = check_timer(select("#", ...), (...))
        local was = t.active
        t.active = false
        return was
      end,
    },
    __metatable = TIMER_META,
  }

  local function timer(fname, n, seconds, fn, repeating)
    seconds = check_number(fname, 1, n, seconds)
    if type(fn) ~= "function" then type_error(fname, 2, n, fn, "function") end
    if not (seconds >= 0 and seconds < 1e8) then arg_error(fname, 1, "seconds out of range") end
    if repeating and seconds < 0.001 then arg_error(fname, 1, "interval must be at least 0.001") end
    local ms = math.floor(seconds * 1000 + 0.5)
    if repeating and ms == 0 then ms = 1 end
    fake.timer_seq = fake.timer_seq + 1
    local t = { due = fake.clock + ms, every = repeating and ms or nil, fn = fn, gen = gen,
                seq = fake.timer_seq, active = true }
    fake.timers[#fake.timers + 1] = t
    return setmetatable({ _timer = t }, timer_mt)
  end

  -- Claims (src/confab_lib.c): on one node the answer comes at once, before claim returns; in
  -- a cluster (M.cluster) at the end of the call into the fake that made the claim, as a reply
  -- from Redis comes later.
  local function check_claim_key(fname, i, n, v)
    v = check_string(fname, i, n, v)
    if #v == 0 or #v > CLAIM_KEY_MAX then arg_error(fname, i, "claim key must be 1 to 128 bytes") end
    return v
  end

  local function check_claim_value(fname, i, n, v)
    v = check_string(fname, i, n, v)
    if #v > CLAIM_VALUE_MAX then arg_error(fname, i, "claim value must be at most 256 bytes") end
    return v
  end

  function confab.claim(...)
    local n, key, value, fn, old = select("#", ...), ...
    key = check_claim_key("claim", 1, n, key)
    value = check_claim_value("claim", 2, n, value)
    if type(fn) ~= "function" then type_error("claim", 3, n, fn, "function") end
    if old ~= nil then old = check_claim_value("claim", 4, n, old) end
    if fake.cluster then
      local q = fake.cluster.claim_queue
      q[#q + 1] = { fake = fake, gen = gen, key = key, value = value, fn = fn, old = old }
      return true
    end
    local ok, held = fake:_claim(key, value, old)
    if ok == nil then return nil, held end
    fake:_protect("claim", fn, ok, held)
    return true
  end

  function confab.release(...)
    local n, key, value = select("#", ...), ...
    key = check_claim_key("release", 1, n, key)
    if value ~= nil then value = check_claim_value("release", 2, n, value) end
    local c = fake.claims[key]
    if not (c and c.node == fake.node and (value == nil or c.value == value)) then return false end
    fake.claims[key] = nil
    fake:_claims_count(-1)
    return true
  end

  function confab.claimed(...)
    local n, key, fn = select("#", ...), ...
    key = check_claim_key("claimed", 1, n, key)
    if fn ~= nil then
      if type(fn) ~= "function" then type_error("claimed", 2, n, fn, "function") end
      if fake.cluster then
        local q = fake.cluster.claim_queue
        q[#q + 1] = { fake = fake, gen = gen, key = key, fn = fn, lookup = true }
      else
        local c = fake.claims[key]
        fake:_protect("claimed", fn, c and c.value, c and c.node)
      end
      return true
    end
    local c = fake.claims[key]
    if not c then return nil end
    return c.value, c.node
  end

  function confab.node()
    return fake.node
  end

  -- Like src/urldecode.c: "%XX" becomes a byte, "+" a space when form is true.
  function confab.urldecode(...)
    local n, str, form = select("#", ...), ...
    str = check_string("urldecode", 1, n, str)
    for pos in str:gmatch("()%%") do
      if not str:find("^%x%x", pos + 1) then return nil, "bad escape" end
    end
    if form then str = str:gsub("+", " ") end   -- first, so that "%2B" stays "+"
    return (str:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end

  function confab.after(...) return timer("after", select("#", ...), select(1, ...), select(2, ...), false) end
  function confab.every(...) return timer("every", select("#", ...), select(1, ...), select(2, ...), true) end

  return confab
end

-- ---- a cluster of fakes (M.cluster) --------------------------------------------------------------
-- N fakes, node ids 1..N, as N confab nodes on one Redis: connection ids carry the node in their
-- high bits (node << 32 | n); confab.members, rooms, rooms_of and get see every node's
-- connections; send and close reach another node's; broadcast reaches every node's members;
-- claims are one table, answered when the call into the cluster that made them ends (as a reply
-- from Redis comes later). History rings stay per node, as in the core. `kill(i)` is a node's
-- death: the lowest live node runs the dead node's leave and disconnect hooks (code 1006, as for a
-- lost connection) and takes its claims over.
local Cluster = {}
Cluster.__index = Cluster

function M.cluster(opts)
  opts = opts or {}
  local cl = setmetatable({ nodes = {}, claims = {}, claim_count = 0, claim_queue = {},
                            closing = {}, settling = false }, Cluster)
  for i = 1, opts.nodes or 2 do
    local node = M.new(opts)
    node.node = i
    node.cluster = cl
    node.claims = cl.claims
    node.next_id = (i << 32) + 1
    cl.nodes[i] = node
  end
  return cl
end

function Cluster:load(path)
  for _, node in ipairs(self.nodes) do node:load(path) end
  return self
end

-- Claims made and closes of other nodes' connections asked for during the call that ends.
function Cluster:_settle()
  if self.settling then return end
  self.settling = true
  while #self.claim_queue > 0 or #self.closing > 0 do
    local q = table.remove(self.claim_queue, 1)
    if q then
      if q.lookup then
        if not q.fake.dead and q.fake.gen == q.gen then
          local c = self.claims[q.key]
          q.fake:_protect("claimed", q.fn, c and c.value, c and c.node)
          q.fake:_settle()
        end
      elseif not q.fake.dead and q.fake.gen == q.gen then
        local ok, held = q.fake:_claim(q.key, q.value, q.old)
        if ok == nil then ok, held = nil, held end
        q.fake:_protect("claim", q.fn, ok, held)
        q.fake:_settle()
      end
    else
      table.remove(self.closing, 1):_settle()
    end
  end
  self.settling = false
end

-- confab.post and confab.replay of a cluster: one history per room for every node (Redis's
-- stream, --history entries), ids from it, delivery to the room's members on every node.
function Cluster:_post(fake, room, head, tail, done)
  self.streams = self.streams or {}
  local st = self.streams[room] or { last = 0, dropped = 0, items = {} }
  self.streams[room] = st
  st.last = st.last + 1
  local data = head .. st.last .. tail
  st.items[#st.items + 1] = { id = st.last, data = data }
  while #st.items > fake.history_size do st.dropped = table.remove(st.items, 1).id end
  local count = 0
  for _, node in ipairs(fake:_all()) do
    local r = node.rooms[room]
    for _, id in ipairs(r and r.list or {}) do
      if node:_deliver(node.conns[id], data, false) then count = count + 1 end
    end
  end
  fake.posts[#fake.posts + 1] = { room = room, id = st.last, data = data, recipients = count }
  if done then fake:_protect("post callback", done, st.last) end
  return true
end

function Cluster:_replay(room, after)
  local st = (self.streams or {})[room] or { last = 0, dropped = 0, items = {} }
  local complete = after <= st.last and after >= st.dropped
  local list = {}
  for _, item in ipairs(st.items) do
    if not complete or item.id > after then list[#list + 1] = item.data end
  end
  return list, complete
end

--- The node (a fake) a connection id belongs to.
function Cluster:node_of(id)
  return self.nodes[id >> 32]
end

--- Moves every node's clock forward, firing due timers of all nodes in time order.
function Cluster:advance(seconds)
  local live = {}
  for _, node in ipairs(self.nodes) do if not node.dead then live[#live + 1] = node end end
  local target = live[1].clock + math.floor((seconds or 0) * 1000 + 0.5)
  while true do
    local due
    for _, node in ipairs(live) do
      for _, t in ipairs(node.timers) do
        if t.active and t.due <= target and (not due or t.due < due) then due = t.due end
      end
    end
    if not due then break end
    for _, node in ipairs(live) do
      if node.clock < due then node:advance((due - node.clock) / 1000) end
    end
  end
  for _, node in ipairs(live) do
    if node.clock < target then node:advance((target - node.clock) / 1000) end
  end
end

--- Node i dies (SIGKILL): its connections leave every room and disconnect, their hooks running on
-- the lowest live node, which also takes over node i's claims; node i's timers never fire.
function Cluster:kill(i)
  local dead = self.nodes[i]
  local reaper
  for _, node in ipairs(self.nodes) do
    if node ~= dead and not node.dead then reaper = node break end
  end
  assert(reaper, "confab_fake: no node left to notice the death")
  for _, c in pairs(self.claims) do
    if c.node == i then c.node = reaper.node end
  end
  dead.timers = {}
  dead.fire_on = reaper
  local ids = {}
  for id in pairs(dead.conns) do ids[#ids + 1] = id end
  table.sort(ids)
  local before = #reaper.errors
  for _, id in ipairs(ids) do dead:_drop(id, 1006) end
  dead.dead = true
  dead.fire_on = nil
  reaper:_settle(before)
end

for _, f in ipairs{ "sent", "frames", "json", "last", "closed", "connected", "message",
                    "disconnect" } do
  Cluster[f] = function(self, id, ...) return self:node_of(id)[f](self:node_of(id), id, ...) end
end

--- Redis lost its data: every live node's epoch changes (and its epoch hooks run).
function Cluster:set_epoch(e)
  for _, node in ipairs(self.nodes) do
    if not node.dead then node:set_epoch(e) end
  end
end

function Cluster:clear()
  for _, node in ipairs(self.nodes) do node:clear() end
end

-- ---- nodes of a cluster --------------------------------------------------------------
-- The live nodes of the cluster but this one; this one and those (node order); the node of a
-- connection id of another live node (nil when it is this node's, or no node's).
function Fake:_others()
  local list = {}
  if not self.cluster then return list end
  for _, node in ipairs(self.cluster.nodes) do
    if node ~= self and not node.dead then list[#list + 1] = node end
  end
  return list
end

function Fake:_all()
  if not self.cluster then return { self } end
  local list = {}
  for _, node in ipairs(self.cluster.nodes) do
    if node == self or not node.dead then list[#list + 1] = node end
  end
  return list
end

function Fake:_remote(id)
  if not self.cluster or math.type(id) ~= "integer" then return nil end
  local node = self.cluster.nodes[id >> 32]
  if not node or node == self or node.dead then return nil end
  local c = node.conns[id]
  if not c or c.state == "connecting" then return nil end
  return node
end

-- Decides a claim as Redis does (or the core alone): granted when the key is free, holds value,
-- or holds old. Returns granted, the value now held; or nil, "too many claims".
function Fake:_claim(key, value, old)
  local c = self.claims[key]
  if c and c.value ~= value and (old == nil or c.value ~= old) then return false, c.value end
  if not c then
    if self:_claims_count(0) >= CLAIMS_MAX then return nil, "too many claims" end
    self:_claims_count(1)
  end
  self.claims[key] = { value = value, node = self.node }
  return true, value
end

-- The number of claims (changed by delta); a cluster's nodes share one count.
function Fake:_claims_count(delta)
  local holder = self.cluster or self
  holder.claim_count = (holder.claim_count or 0) + delta
  return holder.claim_count
end

-- Attribute memory (--attr-memory), counted as the core does (hub_attr_set): a key with its
-- value costs its bytes plus ATTR_OVERHEAD; replacing a value needs room for the difference.
-- Returns false (and changes nothing) when value would pass the limit; nil value releases.
local ATTR_OVERHEAD = 25

local function attr_cost(key, value)
  return ATTR_OVERHEAD + #key + 1 + (type(value) == "string" and #value + 1 or 0)
end

function Fake:_attr_account(c, key, value)
  local old = c.attrs[key]
  local old_cost = old ~= nil and attr_cost(key, old) or 0
  if value == nil then
    self.attr_bytes = self.attr_bytes - old_cost
    return true
  end
  local cost = attr_cost(key, value)
  if self.attr_bytes - old_cost + cost > self.attr_memory then return false end
  self.attr_bytes = self.attr_bytes - old_cost + cost
  return true
end

-- cjson as the sandbox offers it: its depth limits (C recursion in the core) can be lowered but
-- not raised past the default. A table in front of the module (the rest is read through, so a
-- spec may still replace cjson.encode to spy on it); busted's own cjson keeps its setters.
local CJSON_DEPTH_MAX = 1000

function guard_cjson(mod)
  local g = setmetatable({}, { __index = mod })
  for _, f in ipairs{ "encode_max_depth", "decode_max_depth" } do
    local orig = mod[f]
    if orig then
      g[f] = function(...)
        local d = ...
        if d ~= nil then
          d = check_integer(f, 1, select("#", ...), d)
          if d < 1 or d > CJSON_DEPTH_MAX then
            arg_error(f, 1, "depth must be 1 to 1000 (the server's limit)")
          end
        end
        return orig(...)
      end
    end
  end
  if mod.new then g.new = function() return guard_cjson(mod.new()) end end
  return g
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
  env.table, env.math, env.utf8, env.coroutine = table, math, utf8, coroutine
  env.string = string
  if fake.memory then
    -- One string past the cap fails before it is built (method calls like s:rep() do not come
    -- through here: the string metatable is Lua's own).
    env.string = setmetatable({}, { __index = string })
    function env.string.rep(s, n, sep)
      if (type(s) == "string" or type(s) == "number") and math.type(n) == "integer"
         and (sep == nil or type(sep) == "string") then
        local size = n > 0 and #tostring(s) * n + #(sep or "") * (n - 1) or 0
        if fake:_mem_over(size) then error(NO_MEMORY, 0) end
      end
      return string.rep(s, n, sep)
    end
  end
  env.os = { time = os.time, clock = os.clock, date = os.date, difftime = os.difftime }
  env.confab = gen.confab
  env._G = env
  -- The string metatable is shared and locked in the core (getmetatable("") is false).
  function env.getmetatable(v)
    if type(v) == "string" then return false end
    return getmetatable(v)
  end
  -- No __gc: finalizers run outside the core's time limit.
  function env.setmetatable(...)
    local mt = select(2, ...)
    if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
      arg_error("setmetatable", 2, "__gc metamethods are not allowed (finalizers run outside the "
                .. "time limit)")
    end
    return setmetatable(...)
  end
  local modules = { confab = gen.confab, cjson = guard_cjson(cjson),
                    ["cjson.safe"] = guard_cjson(require "cjson.safe") }
  function env.require(...)
    local name = check_string("require", 1, select("#", ...), (...))
    local m = modules[name]
    if m == nil then
      raise(string.format("module '%s' is not available (allowed: confab, cjson, cjson.safe)",
                          name))
    end
    return m
  end
  -- Text chunks only; the environment defaults to the script's globals, but an explicit env
  -- argument, even nil, is used.
  function env.load(...)
    local n, chunk, name, mode, e = select("#", ...), ...
    if mode ~= nil and mode ~= "t" then raise("load: only text chunks are allowed (mode 't')") end
    if n >= 4 then return load(chunk, name, "t", e) end
    return load(chunk, name, "t", env)
  end
  function env.collectgarbage(opt, ...)
    opt = opt or "collect"
    if not ({ collect = true, count = true, step = true, isrunning = true })[opt] then
      arg_error("collectgarbage", 1, "invalid option '" .. tostring(opt) .. "'")
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
        raise(string.format("assignment to undeclared global '%s' (declare it at load time or "
                            .. "use a local)", tostring(k)))
      end
      rawset(t, k, v)
    end,
    __metatable = "the global table is protected",
  })
  return env
end

-- Runs a script file in a fresh generation. Returns the generation, or nil and the error.
function Fake:_instantiate(path)
  local gen = { handlers = {}, path = path, bytes = 0 }
  gen.confab = self:_module(gen)
  gen.env = self:_sandbox(gen)
  gen.loading = true
  -- The load may do more work than one hook: ten times the budget, as in the core.
  local budget = self.instruction_limit and self.instruction_limit * 10
  local res = self:_limited("script load", gen, budget, debug.traceback, function()
    local chunk, err = loadfile(path, "t", gen.env)
    if not chunk then error(err, 0) end
    return chunk()
  end)
  gen.loading = false
  if not res[1] then return nil, res[2] end
  gen.result = res[2]
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
-- room with reason "disconnect", then disconnect (its reason is the core's text for the code:
-- "normal closure" for 1000...; a close frame's own reason is not passed on, as in the core, so
-- the argument `reason` is accepted and ignored). Returns true, or nil, "no such connection".
function Fake:disconnect(id, code)
  local before = #self.errors
  local ok, err = self:_drop(id, code)
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
-- The epoch changes while serving (with --redis: Redis lost its data): confab.epoch becomes e
-- and the `epoch` hooks run.
function Fake:set_epoch(e)
  self.epoch = e
  self.confab.epoch = e
  self:_fire("epoch", { epoch = e })
end

function Fake:clear(id)
  if id ~= nil then
    if self.out[id] then self.out[id] = {} end
    return
  end
  for k in pairs(self.out) do self.out[k] = {} end
  self.broadcasts = {}
  self.posts = {}
end

return M
