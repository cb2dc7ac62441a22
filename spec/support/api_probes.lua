-- api_probes: one table of small calls of the confab API, good and bad. It is a confab script,
-- loaded as it is by the real server (spec/integration/test_api_probes.py) and by the testing
-- kit's fake (spec/api_probes_spec.lua, through spec/support/api_probes_fake.lua): both run the
-- same probes in the same hook and report an outcome string per probe. The outcomes the real core
-- gives are recorded, by running it, in spec/support/api_probes.expected.json; the integration
-- test compares the core's outcomes with that record and with the fake's, the busted spec the
-- fake's with the record. So neither side can change without a test failing. After a deliberate
-- change of the API, record again:
--   CONFAB_PROBES_RECORD=1 /usr/bin/python3 spec/integration/run.py test_api_probes
--
-- The choreography (the clients of the integration test, or the fake's):
--   0. a client opens /ws?probe-connect: the probes of the connect hook run (see phase_probe);
--   1. a client sends "victim": it becomes ctx.victim, and is closed by the script just before
--      the probes run (a connection that is closing);
--   2. a client sends "gone" (joining a room, setting an attribute) and goes away with code 1000:
--      the probes of its leave and disconnect hooks run, then ctx.gone is a stale id; its
--      disconnect hook sends "gone <id>" to the victim, so the test knows the core has forgotten it;
--   3. a client sends "run": the probes run in that message hook with ctx.me = its id, then
--      some in timer callbacks, and the outcomes (with those of the load and of the hooks above)
--      go back to it as one JSON text {"probes": [{name=, got=}, ...]}. One timer callback
--      raises "probe: deliberate" on purpose.
--
-- An outcome is a string: "-> v1, v2" for what a call returned (strings in %q form, tables with
-- their keys sorted, functions and userdata by type), "error: msg" for an error raised with the
-- position of the caller in this file (the position stripped), "error (no position): msg" for one
-- raised without it (such as "not enough memory").
--
-- Both sides run with the flags/options at the top of CONFIG (the test passes them to the server
-- and to the fake). Probes must call the API directly (`confab.send(...)`, not through pcall or a
-- local alias): Lua names the function in "bad argument" messages after the call site.

local confab = require "confab"
local cjson = require "cjson"

-- The limits both sides are started with: --history, --script-memory, --attr-memory.
local CONFIG = { history = 3, script_memory = 16 * 1024 * 1024, attr_memory = 1024 * 1024 }

local probes = {}

-- probe(name, fn(ctx)): fn runs protected with ctx = { me=, victim=, gone=, events=, outcome= }.
local function probe(name, fn)
  for _, p in ipairs(probes) do assert(p.name ~= name, "two probes named " .. name) end
  probes[#probes + 1] = { name = name, fn = fn }
end

local function noop() end

-- Probes return through R(...): a call in `return f()` would be a tail call, and Lua drops the
-- caller's frame for a Lua function (the fake's API) but not for a C one (the core's), so the
-- error position would differ for a reason that is not the API's.
local RESULTS = {}
local function R(...) return setmetatable(table.pack(...), RESULTS) end

-- ---- confab.on: hooks can only be registered while the script loads -------------------------
probe("on: unknown event",
  function() return R(confab.on("nope", noop)) end)
probe("on: no arguments",
  function() return R(confab.on()) end)
probe("on: handler not a function",
  function() return R(confab.on("message", 1)) end)
probe("on: priority not an integer",
  function() return R(confab.on("message", noop, 1.5)) end)
probe("on: good arguments, but after load",
  function() return R(confab.on("message", noop)) end)

-- ---- confab.send ------------------------------------------------------------------------------
probe("send: text",
  function(c) return R(confab.send(c.me, "probe text")) end)
probe("send: number as data",
  function(c) return R(confab.send(c.me, 42)) end)
probe("send: id as a numeric string",
  function(c) return R(confab.send(tostring(c.me), "x")) end)
probe("send: binary, not UTF-8",
  function(c) return R(confab.send(c.me, "\xff\xfe", true)) end)
probe("send: text, not UTF-8",
  function(c) return R(confab.send(c.me, "\xff\xfe")) end)
for _, case in ipairs{ { "surrogate", "\xed\xa0\x80" }, { "overlong NUL", "\xc0\x80" },
                       { "above U+10FFFF", "\xf4\x90\x80\x80" }, { "cut short", "\xe2\x82" },
                       { "NUL", "a\0b" }, { "4-byte", "\xf0\x9f\x98\x80" } } do
  probe("send: text, " .. case[1], function(c) return R(confab.send(c.me, case[2])) end)
end
probe("send: data a table",
  function(c) return R(confab.send(c.me, {})) end)
probe("send: no data",
  function(c) return R(confab.send(c.me)) end)
probe("send: id a float",
  function() return R(confab.send(1.5, "x")) end)
probe("send: id not a number",
  function() return R(confab.send("abc", "x")) end)
probe("send: id nil",
  function() return R(confab.send(nil, "x")) end)
probe("send: id inf",
  function() return R(confab.send(math.huge, "x")) end)
probe("send: stale id",
  function(c) return R(confab.send(c.gone, "x")) end)
probe("send: stale id, bad data",
  function(c) return R(confab.send(c.gone, {})) end)
probe("send: closing connection",
  function(c) return R(confab.send(c.victim, "x")) end)
probe("send: id 0",
  function() return R(confab.send(0, "x")) end)
probe("send: id -1",
  function() return R(confab.send(-1, "x")) end)
probe("send: id never used",
  function() return R(confab.send(2 ^ 40, "x")) end)

-- ---- confab.broadcast ---------------------------------------------------------------------------
probe("broadcast: room without members",
  function() return R(confab.broadcast("probe-empty", "x")) end)
probe("broadcast: empty room name",
  function() return R(confab.broadcast("", "x")) end)
probe("broadcast: room name of 65 bytes",
  function() return R(confab.broadcast(("r"):rep(65), "x")) end)
probe("broadcast: room name with NUL",
  function() return R(confab.broadcast("a\0b", "x")) end)
probe("broadcast: room a table",
  function() return R(confab.broadcast({}, "x")) end)
probe("broadcast: data a table",
  function() return R(confab.broadcast("probe-empty", {})) end)
probe("broadcast: text not UTF-8, to nobody",
  function() return R(confab.broadcast("probe-empty", "\xff")) end)
probe("broadcast: except not a number",
  function() return R(confab.broadcast("probe-empty", "x", "abc")) end)
probe("broadcast: except a float",
  function() return R(confab.broadcast("probe-empty", "x", 1.5)) end)
probe("broadcast: to a member, except nobody / except it",
  function(c)
    confab.join(c.me, "probe-b")
    local a = confab.broadcast("probe-b", "to b")
    local b = confab.broadcast("probe-b", "to b", c.me)
    local d = confab.broadcast("probe-b", "\xff", nil, true)
    local e = c.outcome(function() return R(confab.broadcast("probe-b", "\xff")) end)
    confab.leave(c.me, "probe-b")
    return a, b, d, e
  end)
probe("broadcast: a closing member is skipped",
  function(c)
    confab.join(c.me, "probe-c")
    local n = confab.broadcast("probe-c", "x")
    confab.leave(c.me, "probe-c")
    return n, confab.join(c.victim, "probe-c")
  end)

-- ---- confab.close -------------------------------------------------------------------------------
for _, code in ipairs{ 999, 1004, 1005, 1006, 1015, 2999, 5000 } do
  probe("close: code " .. code,
    function(c) return R(confab.close(c.me, code)) end)
end
probe("close: code a float",
  function(c) return R(confab.close(c.me, 1000.5)) end)
probe("close: code a string",
  function(c) return R(confab.close(c.me, "abc")) end)
probe("close: reason a table",
  function(c) return R(confab.close(c.me, 1000, {})) end)
probe("close: stale id",
  function(c) return R(confab.close(c.gone)) end)
probe("close: stale id, bad code",
  function(c) return R(confab.close(c.gone, 5000)) end)
probe("close: already closing",
  function(c) return R(confab.close(c.victim, 4000, "again")) end)
probe("close: id a table",
  function() return R(confab.close({})) end)

-- ---- rooms --------------------------------------------------------------------------------------
probe("join/leave: twice each",
  function(c)
    return confab.join(c.me, "probe-r"), confab.join(c.me, "probe-r"),
           confab.leave(c.me, "probe-r"), confab.leave(c.me, "probe-r")
  end)
probe("join: the join hook runs inside join",
  function(c)
    local before = c.events()
    confab.join(c.me, "probe-h")
    confab.leave(c.me, "probe-h")
    return c.events(before)
  end)
probe("join: room a number",
  function(c)
    local r = confab.join(c.me, 5)
    return r, confab.rooms_of(c.me)[1], confab.leave(c.me, "5")
  end)
probe("join: 64-byte name",
  function(c) return R(confab.join(c.me, ("n"):rep(64)), confab.leave(c.me, ("n"):rep(64))) end)
probe("join: 65-byte name",
  function(c) return R(confab.join(c.me, ("n"):rep(65))) end)
probe("join: empty name",
  function(c) return R(confab.join(c.me, "")) end)
probe("join: NUL in the name",
  function(c) return R(confab.join(c.me, "a\0b")) end)
probe("join: name a table",
  function(c) return R(confab.join(c.me, {})) end)
probe("join: no name",
  function(c) return R(confab.join(c.me)) end)
probe("join: stale id",
  function(c) return R(confab.join(c.gone, "probe-r")) end)
probe("join: stale id, bad room",
  function(c) return R(confab.join(c.gone, "")) end)
probe("join: closing connection",
  function(c) return R(confab.join(c.victim, "probe-r")) end)
probe("join: id a float",
  function() return R(confab.join(2.5, "probe-r")) end)
probe("join: 1024 rooms, then one more",
  function(c)
    local ok = 0
    for i = 1, 1024 do
      if confab.join(c.me, "probe-many-" .. i) == true then ok = ok + 1 end
    end
    local r1, r2 = confab.join(c.me, "probe-many-1025")
    local again = confab.join(c.me, "probe-many-1")
    local n = #confab.rooms_of(c.me)
    for i = 1, 1025 do confab.leave(c.me, "probe-many-" .. i) end
    return ok, r1, r2, again, n, #confab.rooms_of(c.me)
  end)
probe("leave: never joined",
  function(c) return R(confab.leave(c.me, "probe-never")) end)
probe("leave: stale id",
  function(c) return R(confab.leave(c.gone, "probe-r")) end)
probe("leave: closing connection",
  function(c) return R(confab.leave(c.victim, "probe-r")) end)
probe("leave: NUL in the name",
  function(c) return R(confab.leave(c.me, "a\0b")) end)
probe("members: unknown room",
  function() return R(confab.members("probe-nobody")) end)
probe("members: in join order",
  function(c)
    confab.join(c.me, "probe-m")
    local m = confab.members("probe-m")
    confab.leave(c.me, "probe-m")
    return #m, m[1] == c.me, #confab.members("probe-m")
  end)
probe("members: bad room",
  function() return R(confab.members("")) end)
probe("members: NUL in the name",
  function() return R(confab.members("a\0b")) end)
probe("rooms: lists rooms with members only",
  function(c)
    confab.join(c.me, "probe-x")
    local during = confab.rooms()["probe-x"]
    confab.leave(c.me, "probe-x")
    return during, confab.rooms()["probe-x"], type(confab.rooms())
  end)
probe("rooms_of: joined, in join order",
  function(c)
    confab.join(c.me, "probe-2")
    confab.join(c.me, "probe-1")
    local list = confab.rooms_of(c.me)
    confab.leave(c.me, "probe-2")
    confab.leave(c.me, "probe-1")
    return list
  end)
probe("rooms_of: stale id",
  function(c) return R(confab.rooms_of(c.gone)) end)
probe("rooms_of: closing connection",
  function(c) return R(confab.rooms_of(c.victim)) end)
probe("rooms_of: id a string",
  function() return R(confab.rooms_of("x")) end)

-- ---- attributes ---------------------------------------------------------------------------------
probe("set/get: each value type",
  function(c)
    local out = {}
    for _, v in ipairs{ "v", 7, 1.5, true, false } do
      confab.set(c.me, "k", v)
      local got = confab.get(c.me, "k")
      out[#out + 1] = string.format("%s:%s", math.type(got) or type(got), tostring(got))
    end
    confab.set(c.me, "k", nil)
    out[#out + 1] = tostring(confab.get(c.me, "k"))
    return table.concat(out, " ")
  end)
probe("set: value a table",
  function(c) return R(confab.set(c.me, "k", {})) end)
probe("set: value a function",
  function(c) return R(confab.set(c.me, "k", noop)) end)
probe("set: no value",
  function(c) return R(confab.set(c.me, "k")) end)
probe("set: key a table",
  function(c) return R(confab.set(c.me, {}, 1)) end)
probe("set: key a number",
  function(c)
    local r = confab.set(c.me, 1, "one")
    local g = confab.get(c.me, "1")
    confab.set(c.me, 1, nil)
    return r, g
  end)
probe("set: NUL in the key",
  function(c) return R(confab.set(c.me, "a\0b", 1)) end)
probe("get: NUL in the key",
  function(c) return R(confab.get(c.me, "a\0b")) end)
probe("set: stale id",
  function(c) return R(confab.set(c.gone, "k", 1)) end)
probe("set: stale id, bad value",
  function(c) return R(confab.set(c.gone, "k", {})) end)
probe("set/get: closing connection",
  function(c) return R(confab.set(c.victim, "k", 1), confab.get(c.victim, "k")) end)
probe("get: absent key",
  function(c) return R(confab.get(c.me, "probe-absent")) end)
probe("get: stale id",
  function(c) return R(confab.get(c.gone, "k")) end)
probe("get: no key",
  function(c) return R(confab.get(c.me)) end)
probe("set: 256 keys, then one more",
  function(c)
    local ok = 0
    for i = 1, 256 do
      if confab.set(c.me, "probe-a" .. i, i) then ok = ok + 1 end
    end
    local r1, r2 = confab.set(c.me, "probe-a257", 1)
    local replace = confab.set(c.me, "probe-a1", "again")
    local delete = confab.set(c.me, "probe-a2", nil)
    local r3 = confab.set(c.me, "probe-a257", 1)
    for i = 1, 257 do confab.set(c.me, "probe-a" .. i, nil) end
    return ok, r1, r2, replace, delete, r3
  end)
probe("set: a value past --attr-memory",
  function(c)
    local r1, r2 = confab.set(c.me, "big", ("x"):rep(CONFIG.attr_memory + 1))
    return r1, r2, confab.get(c.me, "big")
  end)
probe("set: values up to --attr-memory, then past it",
  function(c)
    local chunk = ("y"):rep(CONFIG.attr_memory // 4)
    local a = confab.set(c.me, "q1", chunk)
    local b = confab.set(c.me, "q2", chunk)
    local d, e = confab.set(c.me, "q3", chunk .. chunk)
    confab.set(c.me, "q1", nil)
    confab.set(c.me, "q2", nil)
    local f = confab.set(c.me, "q3", chunk .. chunk)
    confab.set(c.me, "q3", nil)
    return a, b, d, e, f
  end)

-- ---- connections and info -----------------------------------------------------------------------
probe("connections: lists open ones, not closing or gone",
  function(c)
    local seen = {}
    for _, id in ipairs(confab.connections()) do seen[id] = true end
    return seen[c.me] == true, seen[c.victim] == true, seen[c.gone] == true
  end)
probe("info: fields",
  function(c)
    local i = confab.info(c.me)
    return i.path, i.query, type(i.remote), i.subprotocol
  end)
probe("info: closing connection",
  function(c) return R(type(confab.info(c.victim))) end)
probe("info: stale id",
  function(c) return R(confab.info(c.gone)) end)
probe("info: id a table",
  function() return R(confab.info({})) end)

-- ---- history ------------------------------------------------------------------------------------
probe("history: add, last, read",
  function()
    local a = confab.history_add("probe-h1", 1, "one")
    local b = confab.history_add("probe-h1", 5, "five")
    return a, b, confab.history_last("probe-h1"), confab.history("probe-h1"),
           confab.history("probe-h1", 1)
  end)
probe("history_add: id not above the last",
  function() return R(confab.history_add("probe-h1", 5, "again")) end)
probe("history_add: id below the last",
  function() return R(confab.history_add("probe-h1", 2, "back")) end)
probe("history_add: id 0",
  function() return R(confab.history_add("probe-h2", 0, "x")) end)
probe("history_add: id -1",
  function() return R(confab.history_add("probe-h2", -1, "x")) end)
probe("history_add: id 0 and data a table",
  function() return R(confab.history_add("probe-h2", 0, {})) end)
probe("history_add: id a float",
  function() return R(confab.history_add("probe-h2", 1.5, "x")) end)
probe("history_add: data a table",
  function() return R(confab.history_add("probe-h2", 1, {})) end)
probe("history_add: data a number",
  function() return R(confab.history_add("probe-h3", 1, 12), confab.history("probe-h3")) end)
probe("history_add: bad room",
  function() return R(confab.history_add("", 1, "x")) end)
probe("history_add: NUL in the room",
  function() return R(confab.history_add("a\0b", 1, "x")) end)
probe("history: ring of --history entries",
  function()
    for i = 1, 5 do confab.history_add("probe-ring", i, "m" .. i) end
    local all, c1 = confab.history("probe-ring")
    local after1, c2 = confab.history("probe-ring", 1)
    local after2, c3 = confab.history("probe-ring", 2)
    local after5, c4 = confab.history("probe-ring", 5)
    return all, c1, after1, c2, after2, c3, after5, c4
  end)
probe("history: after a negative id",
  function() return R(confab.history("probe-h1", -5)) end)
probe("history: after beyond the last",
  function() return R(confab.history("probe-h1", 100)) end)
probe("history: unknown room",
  function() return R(confab.history("probe-none"), confab.history_last("probe-none")) end)
probe("history: after not a number",
  function() return R(confab.history("probe-h1", "x")) end)
probe("history: bad room",
  function() return R(confab.history(("r"):rep(65))) end)
probe("history_last: bad room",
  function() return R(confab.history_last({})) end)
-- ---- post and replay (without --redis: answered before they return) ---------------------------
probe("post: numbered, stored, delivered, done at once",
  function()
    local got = {}
    local ok1 = confab.post("probe-p1", '{"id":', '}', function(id) got[#got + 1] = id end)
    local ok2 = confab.post("probe-p1", "a", "b")
    return R(ok1, ok2, got, confab.history("probe-p1"), confab.history_last("probe-p1"))
  end)
probe("post: head a table",
  function() return R(confab.post("probe-p2", {}, "")) end)
probe("post: tail missing",
  function() return R(confab.post("probe-p2", "x")) end)
probe("post: done not a function",
  function() return R(confab.post("probe-p2", "x", "y", 1)) end)
probe("post: tail not UTF-8",
  function() return R(confab.post("probe-p2", "x", "\255")) end)
probe("post: bad room",
  function() return R(confab.post("", "x", "y")) end)
probe("replay: complete, trimmed, foreign, unknown room",
  function()
    for i = 1, 5 do confab.history_add("probe-r1", i, "m" .. i) end
    local res = {}
    local a = confab.replay("probe-r1", 3, function(l, c) res[1], res[2] = l, c end)
    confab.replay("probe-r1", 1, function(l, c) res[3], res[4] = l, c end)
    confab.replay("probe-r1", 9, function(l, c) res[5], res[6] = l, c end)
    confab.replay("probe-none2", 0, function(l, c) res[7], res[8] = l, c end)
    return R(a, table.unpack(res, 1, 8))
  end)
probe("replay: after negative",
  function() return R(confab.replay("probe-r1", -1, noop)) end)
probe("replay: fn missing",
  function() return R(confab.replay("probe-r1", 0)) end)
probe("replay: after not a number",
  function() return R(confab.replay("probe-r1", "x", noop)) end)

-- ---- claims (one node: the answer comes before claim returns) -----------------------------------
-- claim(...) gives claim's own results, then what fn got, as one string.
local function claim(key, value, old)
  local got = {}
  local rest = table.pack(confab.claim(key, value, function(...) got = table.pack(...) end, old))
  local parts = {}
  for i = 1, rest.n do parts[#parts + 1] = tostring(rest[i]) end
  parts[#parts + 1] = "fn:"
  for i = 1, got.n or 0 do parts[#parts + 1] = tostring(got[i]) end
  return table.concat(parts, " ")
end
probe("claim: free key, then claimed",
  function() return R(claim("probe:a", "v1"), confab.claimed("probe:a")) end)
probe("claim: same value again",
  function() claim("probe:b", "v1"); return R(claim("probe:b", "v1")) end)
probe("claim: held by another value",
  function() claim("probe:c", "v1"); return R(claim("probe:c", "v2"), confab.claimed("probe:c")) end)
probe("claim: taken over from old",
  function() claim("probe:d", "v1"); return R(claim("probe:d", "v2", "v1"), confab.claimed("probe:d")) end)
probe("claim: old that does not match",
  function() claim("probe:e", "v1"); return R(claim("probe:e", "v2", "v3")) end)
probe("claim: empty value, number value",
  function() return R(claim("probe:f", ""), claim("probe:g", 42)) end)
probe("claim: fn runs before claim returns",
  function()
    local order = {}
    confab.claim("probe:h", "v", function() order[#order + 1] = "fn" end)
    order[#order + 1] = "returned"
    return R(table.concat(order, " "))
  end)
probe("claim: key empty",
  function() return R(confab.claim("", "v", noop)) end)
probe("claim: key 129 bytes",
  function() return R(confab.claim(string.rep("k", 129), "v", noop)) end)
probe("claim: key 128 bytes",
  function() return R(confab.claim(string.rep("k", 128), "v", noop)) end)
probe("claim: value 257 bytes",
  function() return R(confab.claim("probe:i", string.rep("v", 257), noop)) end)
probe("claim: value a table",
  function() return R(confab.claim("probe:i", {}, noop)) end)
probe("claim: no fn",
  function() return R(confab.claim("probe:i", "v")) end)
probe("claim: old a table",
  function() return R(confab.claim("probe:i", "v", noop, {})) end)
probe("claim: no arguments",
  function() return R(confab.claim()) end)
probe("release: held, then free",
  function() claim("probe:j", "v1"); return R(confab.release("probe:j"), confab.claimed("probe:j"),
                                              confab.release("probe:j")) end)
probe("release: value must match",
  function() claim("probe:k", "v1"); return R(confab.release("probe:k", "v2"),
                                              confab.release("probe:k", "v1")) end)
probe("release: never claimed",
  function() return R(confab.release("probe:never")) end)
probe("release: bad key",
  function() return R(confab.release("")) end)
probe("release: value a table",
  function() return R(confab.release("probe:k", {})) end)
probe("claimed: with fn, held and free (fn runs before claimed returns)",
  function()
    claim("probe:l", "v1")
    local got = {}
    local r1 = confab.claimed("probe:l", function(...) got[#got + 1] = table.pack(...) end)
    local r2 = confab.claimed("probe:never", function(...) got[#got + 1] = table.pack(...) end)
    return R(r1, r2, #got, got[1][1], got[1][2], got[2].n, got[2][1])
  end)
probe("claimed: fn not a function",
  function() return R(confab.claimed("probe:l", 1)) end)
probe("claimed: never claimed",
  function() return R(confab.claimed("probe:never")) end)
probe("claimed: bad key",
  function() return R(confab.claimed(1 < 0)) end)
probe("node: one node is node 0",
  function() return R(confab.node()) end)

-- ---- time and logging -----------------------------------------------------------------------------
probe("now and epoch: integers",
  function() return R(math.type(confab.now()), math.type(confab.epoch)) end)
probe("log: good",
  function() return R(confab.log("debug", "probe %d %s", 1, "x")) end)
probe("log: unknown level",
  function() return R(confab.log("nope", "x")) end)
probe("log: no level",
  function() return R(confab.log()) end)
probe("log: no format",
  function() return R(confab.log("info")) end)
probe("log: format and arguments disagree",
  function() return R(confab.log("info", "%d", "x")) end)
probe("log: format a table",
  function() return R(confab.log("info", {})) end)

-- ---- timers ---------------------------------------------------------------------------------------
probe("after: handle, cancel twice",
  function()
    local t = confab.after(10, noop)
    return getmetatable(t), t:cancel(), t:cancel()
  end)
probe("every: handle, cancel",
  function()
    local t = confab.every(0.001, noop)
    return getmetatable(t), t:cancel()
  end)
probe("after: seconds as a numeric string",
  function() return R(confab.after("1", noop):cancel()) end)
probe("after: 0 seconds",
  function() return R(confab.after(0, noop):cancel()) end)
probe("after: negative",
  function() return R(confab.after(-1, noop)) end)
probe("after: 1e8 seconds",
  function() return R(confab.after(1e8, noop)) end)
probe("after: NaN",
  function() return R(confab.after(0 / 0, noop)) end)
probe("after: seconds not a number",
  function() return R(confab.after("soon", noop)) end)
probe("after: function missing",
  function() return R(confab.after(1)) end)
probe("after: negative and no function",
  function() return R(confab.after(-1, "f")) end)
probe("every: 0",
  function() return R(confab.every(0, noop)) end)
probe("every: below 1 ms",
  function() return R(confab.every(0.0005, noop)) end)
probe("every: inf",
  function() return R(confab.every(math.huge, noop)) end)
probe("cancel: not a timer",
  function()
    local t = confab.after(1, noop)
    t:cancel()
    return R(t.cancel({}))
  end)

-- ---- urldecode ------------------------------------------------------------------------------------
for _, case in ipairs{
  { "a%20b" }, { "a+b" }, { "a+b", true }, { "%2B", true }, { "%2b%41" }, { "%00" },
  { "%e9" }, { "%zz" }, { "%2" }, { "%" }, { "100%" }, { "" }, { 42 },
} do
  probe(string.format("urldecode: %q%s", tostring(case[1]), case[2] and ", form" or ""), function() return R(confab.urldecode(case[1], case[2])) end)
end
probe("urldecode: nil",
  function() return R(confab.urldecode(nil)) end)
probe("urldecode: a table",
  function() return R(confab.urldecode({})) end)

-- ---- the sandbox around the API -------------------------------------------------------------------
probe("require: a module not offered",
  function() return R(require("io")) end)
probe("require: no name",
  function() return R(require()) end)
probe("require: the offered ones",
  function()
    return require("confab") == confab, require("cjson") == cjson, type(require("cjson.safe"))
  end)
probe("globals: what is not there",
  function()
    return io, debug, dofile, loadfile, package, os.exit, os.getenv, os.remove, string.dump
  end)
probe("globals: assigning a new one after load",
  function() probe_new_global = 1 end)
probe("globals: the metatable is locked",
  function() return R(getmetatable(_G)) end)
probe("globals: the string metatable is locked",
  function() return R(getmetatable("")) end)
probe("load: binary mode",
  function() return R(load("return 1", "x", "b")) end)
probe("load: a binary chunk",
  function() return R(load("\27Lua")) end)
probe("load: a syntax error",
  function() return R(load("x =", "=probe")) end)
probe("load: text",
  function() return R(load("return 1 + 1")()) end)
probe("collectgarbage: stop",
  function() return R(collectgarbage("stop")) end)
probe("collectgarbage: count",
  function() return R(math.type(collectgarbage("count"))) end)
probe("setmetatable: __gc",
  function() return R(setmetatable({}, { __gc = noop })) end)
probe("xpcall: handler",
  function() return R(xpcall(error, function(m) return "handled " .. tostring(m) end, "e")) end)
probe("table.sort: mixed types",
  function() return R(table.sort({ 1, "x", 2 })) end)
probe("string.find: malformed pattern",
  function() return R(string.find("a", "[a")) end)
probe("string.gsub: in a method call",
  function() return R(("hello"):gsub("l+", "L")) end)
probe("cjson: raising the depth limit",
  function() return R(cjson.encode_max_depth(2000)) end)
probe("cjson: lowering the depth limit and back",
  function() return R(cjson.decode_max_depth(5), cjson.decode_max_depth(1000)) end)

-- ---- the memory cap (--script-memory) ---------------------------------------------------------------
probe("memory: a table growing past the cap",
  function()
    local ok, err = pcall(function()
      local t = {}
      for i = 1, 1e9 do t[i] = ("m"):rep(1000) .. i end
    end)
    collectgarbage()
    return ok, err
  end)
probe("memory: one string bigger than the cap",
  function()
    local ok, err = pcall(function() return string.rep("x", CONFIG.script_memory * 2) end)
    return ok, err
  end)
probe("memory: the hook goes on after a failed allocation",
  function() return R(#("x"):rep(1000)) end)

-- ---- probes inside other hooks -------------------------------------------------------------------
-- Run in the connect hook of a client at /ws?probe-connect (before the 101), and in the leave and
-- disconnect hooks of the "gone" client (which joined "probe-gone-room" and set "who"): ctx.me
-- is that connection, ctx.ev the hook's event.
local phases = { connect = {}, leave = {}, disconnect = {} }

local function phase_probe(phase, name, fn)
  local list = phases[phase]
  list[#list + 1] = { name = "in " .. phase .. ": " .. name, fn = fn }
end

phase_probe("connect", "send to the connecting client", function(c) return R(confab.send(c.me, "early")) end)
phase_probe("connect", "listed by connections()", function(c)
  for _, id in ipairs(confab.connections()) do if id == c.me then return true end end
  return false
end)
phase_probe("connect", "join and leave", function(c)
  return confab.join(c.me, "probe-early"), confab.leave(c.me, "probe-early")
end)
phase_probe("connect", "set and get", function(c)
  return confab.set(c.me, "early", 1), confab.get(c.me, "early")
end)
phase_probe("connect", "info", function(c)
  local i = confab.info(c.me)
  return i and i.path, i and i.query
end)
phase_probe("connect", "rooms_of", function(c) return R(confab.rooms_of(c.me)) end)
phase_probe("connect", "event fields", function(c)
  return c.ev.path, c.ev.query, type(c.ev.headers), type(c.ev.remote)
end)
phase_probe("connect", "close", function(c) return R(confab.close(c.me, 4000, "early")) end)

for _, phase in ipairs{ "leave", "disconnect" } do
  phase_probe(phase, "event fields", function(c)
    return c.ev.room, c.ev.reason, c.ev.code
  end)
  phase_probe(phase, "send to it", function(c) return R(confab.send(c.me, "late")) end)
  phase_probe(phase, "attributes readable", function(c) return R(confab.get(c.me, "who")) end)
  phase_probe(phase, "set an attribute", function(c)
    return confab.set(c.me, "late", true), confab.get(c.me, "late")
  end)
  phase_probe(phase, "rooms_of and members", function(c)
    return confab.rooms_of(c.me), #confab.members("probe-gone-room")
  end)
  phase_probe(phase, "join", function(c) return R(confab.join(c.me, "probe-late")) end)
  phase_probe(phase, "leave", function(c) return R(confab.leave(c.me, "probe-gone-room")) end)
  phase_probe(phase, "close", function(c) return R(confab.close(c.me)) end)
  phase_probe(phase, "info", function(c) return type(confab.info(c.me)) end)
  phase_probe(phase, "listed by connections()", function(c)
    for _, id in ipairs(confab.connections()) do if id == c.me then return true end end
    return false
  end)
end

-- ---- running them -------------------------------------------------------------------------------

-- A value as a deterministic string: strings in %q form (newlines and bytes above 127 as \ddd, so
-- the outcome is ASCII), tables with their keys sorted, others by type.
local function show(v)
  local t = type(v)
  if t == "string" then
    return (string.format("%q", v):gsub("\\\n", "\\n"):gsub("[\128-\255]", function(ch)
      return "\\" .. ch:byte()
    end))
  elseif t == "number" or t == "boolean" or t == "nil" then
    return tostring(v)
  elseif t == "table" and getmetatable(v) == nil then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return show(a) < show(b) end)
    local parts = {}
    local n = #v
    for _, k in ipairs(keys) do
      if math.type(k) == "integer" and k >= 1 and k <= n then
        parts[#parts + 1] = show(v[k])
      else
        parts[#parts + 1] = "[" .. show(k) .. "]=" .. show(v[k])
      end
    end
    return "{" .. table.concat(parts, ", ") .. "}"
  end
  return "<" .. t .. ">"
end

local function outcome(fn, ctx)
  local r = table.pack(pcall(fn, ctx))
  if r[1] and r.n == 2 and getmetatable(r[2]) == RESULTS then
    r = table.pack(true, table.unpack(r[2], 1, r[2].n))
  end
  if not r[1] then
    local msg = r[2]
    if type(msg) ~= "string" then return "error object: " .. show(msg) end
    local stripped, n = msg:gsub("^[^\n]-api_probes%.lua:%d+: ", "", 1)
    if n == 1 then return "error: " .. stripped end
    return "error (no position): " .. msg
  end
  local parts = {}
  for i = 2, r.n do parts[#parts + 1] = show(r[i]) end
  return "-> " .. table.concat(parts, ", ")
end

local ctx = { victim = nil, gone = nil, outcome = outcome }

-- While the script loads (confab.on is allowed then): run at the end of the load.
local phases_load = {
  { "on: priority a string", function() return R(confab.on("message", noop, "high")) end },
  { "on: priority a numeric string", function() return R(confab.on("message", noop, "5")) end },
  { "on: priority a float with an integer value", function() return R(confab.on("message", noop, 2.0)) end },
  { "on: unknown event", function() return R(confab.on("nope", noop)) end },
  { "on: handler a table", function() return R(confab.on("message", {})) end },
  { "on: good", function() return R(confab.on("join", noop, -100)) end },
  { "connections", function() return R(confab.connections()) end },
  { "send", function() return R(confab.send(1, "x")) end },
  { "timer and cancel", function() return R(confab.after(1, noop):cancel()) end },
  { "rooms", function() return R(confab.rooms()) end },
}

-- In timer callbacks, once "run" has run: an after(0) and an every(0.001) whose first call raises
-- (on purpose: the error is "probe: deliberate") and whose second sends everything.
local timer_results = {}
local function timer_probe(name, fn)
  timer_results[#timer_results + 1] = { name = "in timer: " .. name, got = outcome(fn, ctx) }
end

local events = 0
local early = {} -- outcomes of the probes run inside other hooks, sent with the rest

-- ctx.events(): the number of join/leave hook calls so far; ctx.events(n): since n.
function ctx.events(since) return events - (since or 0) end

local function run_phase(phase, ev)
  local c = { me = ev.id, ev = ev, outcome = outcome }
  for _, p in ipairs(phases[phase]) do
    early[#early + 1] = { name = p.name, got = outcome(p.fn, c) }
  end
end

confab.on("connect", function(ev)
  if ev.query == "probe-connect" then run_phase("connect", ev) end
end)

confab.on("join", function() events = events + 1 end)
confab.on("leave", function(ev)
  events = events + 1
  if ev.id == ctx.gone and ev.room == "probe-gone-room" and ev.reason == "disconnect" then
    run_phase("leave", ev)
  end
end)

confab.on("message", function(ev)
  if ev.data == "victim" then
    ctx.victim = ev.id
    confab.send(ev.id, "victim")
  elseif ev.data == "gone" then
    ctx.gone = ev.id
    confab.join(ev.id, "probe-gone-room")
    confab.set(ev.id, "who", "gone")
    confab.send(ev.id, "gone")
  elseif ev.data == "run" then
    ctx.me = ev.id
    confab.close(ctx.victim, 1000, "probed")
    local list = {}
    for _, o in ipairs(early) do list[#list + 1] = o end
    for _, p in ipairs(probes) do
      list[#list + 1] = { name = p.name, got = outcome(p.fn, ctx) }
    end
    local once
    once = confab.after(0, function()
      timer_probe("cancel its own after", function() return R(once:cancel()) end)
      timer_probe("confab.on", function() return R(confab.on("message", noop)) end)
      timer_probe("send", function(c) return R(confab.send(c.me, "from a timer")) end)
      timer_probe("a new timer", function() return R(confab.after(5, noop):cancel()) end)
    end)
    local ticks, every = 0, nil
    every = confab.every(0.001, function()
      ticks = ticks + 1
      if ticks == 1 then error("probe: deliberate") end
      timer_probe("every goes on after an error", function() return ticks end)
      timer_probe("cancel its own every", function() return R(every:cancel()) end)
      for _, o in ipairs(timer_results) do list[#list + 1] = o end
      confab.send(ctx.me, cjson.encode({ probes = list }))
    end)
  end
end)

confab.on("disconnect", function(ev)
  if ev.id == ctx.gone then
    run_phase("disconnect", ev)
    if ctx.victim then confab.send(ctx.victim, "gone " .. ev.id) end
  end
end)

for _, p in ipairs(phases_load) do
  early[#early + 1] = { name = "at load: " .. p[1], got = outcome(p[2], ctx) }
end

return { config = CONFIG, probes = probes }
