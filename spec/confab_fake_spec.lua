-- Specs of the script testing kit itself (spec/support/confab_fake.lua).
local confab_fake = require "confab_fake"

-- Writes a throwaway script and returns its path.
local tmpfiles = {}
local function script(src)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  tmpfiles[#tmpfiles + 1] = path
  return path
end

teardown(function()
  for _, p in ipairs(tmpfiles) do os.remove(p) end
end)

-- A script that records every event it sees in the global `seen` of its own environment,
-- reachable from the spec through the returned table.
local RECORDER = [[
local confab = require "confab"
local seen = {}
for _, name in ipairs{ "connect", "message", "join", "leave", "disconnect", "reload" } do
  confab.on(name, function(ev)
    local copy = { event = name }
    for k, v in pairs(ev) do copy[k] = v end
    copy.attr = ev.id and confab.get(ev.id, "k")
    seen[#seen + 1] = copy
  end)
end
return { seen = seen }
]]

describe("confab_fake", function()
  describe("loading", function()
    it("offers the fake as require 'confab' and as the global confab", function()
      local fake = confab_fake.new():load(script([[
        local a = require "confab"
        return { same = (a == confab), epoch = a.epoch }
      ]]))
      assert.is_true(fake.script.same)
      assert.equal(fake.epoch, fake.script.epoch)
    end)

    it("keeps the script's globals out of _G", function()
      confab_fake.new():load(script("leaked_global_of_script = 1"))
      assert.is_nil(rawget(_G, "leaked_global_of_script"))
    end)

    it("runs the script in the core's sandbox", function()
      local fake = confab_fake.new():load(script([[
        local r = {}
        r.io, r.debug, r.dofile, r.exit = io, debug, dofile, os.exit
        r.time = type(os.time())
        r.req = { pcall(require, "io") }
        r.cjson_safe = require("cjson.safe").decode("x") == nil
        declared_at_load = true
        confab.on("message", function(ev)
          local ok, err = pcall(function() late_global = 1 end)
          confab.send(ev.id, tostring(ok) .. " " .. err)
          print("printed", 1)
        end)
        return r
      ]]))
      local r = fake.script
      assert.is_nil(r.io)
      assert.is_nil(r.debug)
      assert.is_nil(r.dofile)
      assert.is_nil(r.exit)
      assert.equal("number", r.time)
      assert.is_false(r.req[1])
      assert.matches("not available", r.req[2])
      assert.is_true(r.cjson_safe)
      local a = fake:connect()
      fake:message(a, "x")
      assert.matches("^false .*undeclared global 'late_global'", fake:sent(a)[1])
      assert.same({ level = "info", message = "printed\t1" }, fake.logs[1])
    end)

    it("raises when the script does not load", function()
      assert.has_error(function() confab_fake.new():load(script("this is not lua")) end)
      assert.has_error(function() confab_fake.new():load(script("error('boom')")) end)
    end)

    it("rejects unknown events and bad handlers like the core", function()
      local fake = confab_fake.new():load(script("return {}"))
      assert.has_error(function() fake.confab.on("nope", function() end) end)
      assert.has_error(function() fake.confab.on("message", "not a function") end)
    end)
  end)

  describe("connections", function()
    it("runs connect hooks with the request's fields and lower-case headers", function()
      local fake = confab_fake.new():load(script(RECORDER))
      local a = fake:connect{ path = "/ws/x", query = "a=1", headers = { ["X-Thing"] = "yes" },
                              remote = "10.0.0.1:5000", subprotocol = "chat" }
      assert.equal(1, a)
      local ev = fake.script.seen[1]
      assert.equal("connect", ev.event)
      assert.equal("/ws/x", ev.path)
      assert.equal("a=1", ev.query)
      assert.equal("yes", ev.headers["x-thing"])
      assert.equal("10.0.0.1:5000", ev.remote)
      assert.equal("chat", ev.subprotocol)
      assert.same({ remote = "10.0.0.1:5000", path = "/ws/x", query = "a=1", subprotocol = "chat" },
                  fake.confab.info(a))
    end)

    it("gives ids that are never reused", function()
      local fake = confab_fake.new():load(script("return {}"))
      local a = fake:connect()
      fake:disconnect(a)
      local b = fake:connect()
      assert.are_not.equal(a, b)
      assert.same({ b }, fake.confab.connections())
    end)

    it("returns nil and the reason when a connect hook refuses", function()
      local fake = confab_fake.new():load(script([[
        local disconnects = 0
        confab.on("connect", function(ev)
          confab.send(ev.id, "never delivered")
          if ev.headers.origin ~= "ok" then return false, "bad origin" end
        end)
        confab.on("disconnect", function() disconnects = disconnects + 1 end)
        return { disconnects = function() return disconnects end }
      ]]))
      local id, reason = fake:connect{ headers = { Origin = "evil" } }
      assert.is_nil(id)
      assert.equal("bad origin", reason)
      assert.same({}, fake.confab.connections())
      assert.equal(0, fake.script.disconnects())
      local ok = fake:connect{ headers = { Origin = "ok" } }
      assert.same({ "never delivered" }, fake:sent(ok))
    end)

    it("fires one leave per room (last joined first), then disconnect, with attributes readable", function()
      local fake = confab_fake.new():load(script(RECORDER))
      local a = fake:connect()
      fake.confab.set(a, "k", "v")
      fake.confab.join(a, "r1")
      fake.confab.join(a, "r2")
      fake:disconnect(a, 1001, "bye")
      local tail = {}
      for i = #fake.script.seen - 2, #fake.script.seen do
        local ev = fake.script.seen[i]
        tail[#tail + 1] = { ev.event, ev.room, ev.reason, ev.code, ev.attr }
      end
      assert.same({ { "leave", "r2", "disconnect", nil, "v" }, { "leave", "r1", "disconnect", nil, "v" },
                    { "disconnect", nil, "going away", 1001, "v" } }, tail)
      assert.same({}, fake.confab.members("r1"))
    end)

    it("bounds rooms and attribute keys per connection like the core", function()
      local fake = confab_fake.new():load(script(RECORDER))
      local a = fake:connect()
      for i = 1, 1024 do assert.is_true(fake.confab.join(a, "r" .. i)) end
      assert.same({ nil, "too many rooms" }, { fake.confab.join(a, "one more") })
      assert.is_false(fake.confab.join(a, "r1"))
      for i = 1, 256 do assert.is_true(fake.confab.set(a, "k" .. i, i)) end
      assert.same({ nil, "too many attributes" }, { fake.confab.set(a, "one more", 1) })
      assert.is_true(fake.confab.set(a, "k1", "replaced"))
      assert.is_true(fake.confab.set(a, "k2", nil))
      assert.is_true(fake.confab.set(a, "one more", 1))
    end)

    it("uses code 1006 when the client left without a close frame", function()
      local fake = confab_fake.new():load(script(RECORDER))
      local a = fake:connect()
      fake:disconnect(a)
      assert.equal(1006, fake.script.seen[#fake.script.seen].code)
    end)

    it("answers nil, 'no such connection' for stale ids", function()
      local fake = confab_fake.new():load(script("return {}"))
      local a = fake:connect()
      fake:disconnect(a)
      local c = fake.confab
      for _, call in ipairs{ function() return c.send(a, "x") end, function() return c.close(a) end,
                             function() return c.join(a, "r") end, function() return c.leave(a, "r") end,
                             function() return c.rooms_of(a) end, function() return c.set(a, "k", 1) end,
                             function() return c.get(a, "k") end, function() return c.info(a) end,
                             function() return c.send(999, "x") end } do
        local v, err = call()
        assert.is_nil(v)
        assert.equal("no such connection", err)
      end
      assert.same({ nil, "no such connection" }, { fake:message(a, "x") })
      assert.same({ nil, "no such connection" }, { fake:disconnect(a) })
    end)

    it("refuses the connection when a connect hook fails, like the core's 500", function()
      local fake = confab_fake.new():load(script([[
        confab.on("connect", function(ev) if ev.path == "/bad" then error("oops") end end)
      ]]))
      local id, reason = fake:connect{ path = "/bad" }
      assert.is_nil(id)
      assert.equal("the server's connect hook failed", reason)
      assert.equal(1, #fake.errors)
      assert.is_number(fake:connect())
    end)

    it("stops sending to, and listing, a connection the script closed", function()
      local fake = confab_fake.new():load(script([[
        local seen = {}
        confab.on("message", function(ev)
          confab.join(ev.id, "r")
          confab.close(ev.id)
          seen.send = { confab.send(ev.id, "late") }
          seen.join = { confab.join(ev.id, "r2") }
          seen.count = confab.broadcast("r", "to room")
          seen.listed = #confab.connections()
          seen.attr = { confab.set(ev.id, "k", 1) }
        end)
        return seen
      ]]))
      local a = fake:connect()
      fake:message(a, "x")
      assert.same({ send = { nil, "no such connection" }, join = { nil, "no such connection" },
                    count = 0, listed = 0, attr = { true } }, fake.script)
      assert.same({}, fake:sent(a))
    end)

    it("raises for close codes a server may not send", function()
      local fake = confab_fake.new():load(script("return {}"))
      local a = fake:connect()
      assert.has_error(function() fake.confab.close(a, 1005) end)
      assert.has_error(function() fake.confab.close(a, 2000) end)
      assert.is_true(fake.confab.close(a, 4001))
    end)

    it("closes a connection after the event that asked for it", function()
      local fake = confab_fake.new():load(script([[
        local order = {}
        confab.on("message", function(ev)
          confab.send(ev.id, "bye")
          confab.close(ev.id, 4000, "go away")
          order[#order + 1] = "message done"
        end)
        confab.on("disconnect", function(ev) order[#order + 1] = "disconnect " .. ev.code end)
        return order
      ]]))
      local a = fake:connect()
      fake:message(a, "hi")
      assert.same({ "message done", "disconnect 4000" }, fake.script)
      assert.same({ 4000, "go away" }, { fake:closed(a) })
      assert.same({ "bye" }, fake:sent(a))
      assert.is_false(fake:connected(a))
    end)
  end)

  describe("hooks", function()
    it("runs handlers by descending priority and stops at the first non-nil return", function()
      local fake = confab_fake.new():load(script([[
        local calls = {}
        confab.on("message", function() calls[#calls + 1] = "low" end, -5)
        confab.on("message", function(ev) calls[#calls + 1] = "first 0"; ev.tag = "x" end)
        confab.on("message", function(ev)
          calls[#calls + 1] = "second 0 " .. ev.tag
          if ev.data == "stop" then return true end
        end)
        confab.on("message", function() calls[#calls + 1] = "high" end, 10)
        return calls
      ]]))
      local a = fake:connect()
      fake:message(a, "go")
      assert.same({ "high", "first 0", "second 0 x", "low" }, fake.script)
      for i = #fake.script, 1, -1 do fake.script[i] = nil end
      fake:message(a, "stop")
      assert.same({ "high", "first 0", "second 0 x" }, fake.script)
    end)

    it("records a hook error, drops that event, and goes on", function()
      local fake = confab_fake.new():load(script([[
        confab.on("message", function(ev)
          if ev.data == "bad" then error("kaboom") end
          confab.send(ev.id, "echo " .. ev.data)
        end)
      ]]))
      local a = fake:connect()
      assert.is_true(fake:message(a, "bad"))
      fake:message(a, "good")
      assert.equal(1, #fake.errors)
      assert.equal("message", fake.errors[1].event)
      assert.matches("kaboom", fake.errors[1].message)
      assert.same({ "echo good" }, fake:sent(a))
    end)

    it("re-raises hook errors in strict mode", function()
      local fake = confab_fake.new{ strict = true }:load(script(
        "confab.on('message', function() error('kaboom') end)"))
      local a = fake:connect()
      assert.has_error(function() fake:message(a, "x") end)
    end)

    it("aborts an endless loop like --hook-timeout", function()
      local fake = confab_fake.new{ instruction_limit = 100000 }:load(script([[
        confab.on("message", function(ev)
          if ev.data == "loop" then while true do end end
          confab.send(ev.id, "alive")
        end)
      ]]))
      local a = fake:connect()
      fake:message(a, "loop")
      assert.matches("timeout", fake.errors[1].message)
      fake:message(a, "x")
      assert.same({ "alive" }, fake:sent(a))
    end)

    it("raises for wrong argument types inside a hook (recorded as a hook error)", function()
      local fake = confab_fake.new():load(script([[
        confab.on("message", function(ev) confab.send(ev.id, {}) end)
      ]]))
      local a = fake:connect()
      fake:message(a, "x")
      assert.matches("bad argument #2 to 'send'", fake.errors[1].message)
    end)

    it("refuses to send invalid UTF-8 as text but sends it as binary", function()
      local fake = confab_fake.new():load(script([[
        confab.on("message", function(ev)
          confab.send(ev.id, "\255", true)
          confab.send(ev.id, "\255")
        end)
      ]]))
      local a = fake:connect()
      fake:message(a, "x")
      assert.equal(1, #fake.errors)
      assert.same({ { data = "\255", binary = true } }, fake:frames(a))
      assert.has_error(function() fake:message(a, "\255") end)
    end)
  end)

  describe("rooms", function()
    it("keeps members in join order and fires join and leave", function()
      local fake = confab_fake.new():load(script(RECORDER))
      local c = fake.confab
      local a, b = fake:connect(), fake:connect()
      assert.is_true(c.join(b, "r"))
      assert.is_true(c.join(a, "r"))
      assert.is_false(c.join(a, "r"))
      assert.same({ b, a }, c.members("r"))
      assert.same({ r = 2 }, c.rooms())
      assert.same({ "r" }, c.rooms_of(a))
      assert.is_true(c.leave(a, "r"))
      assert.is_false(c.leave(a, "r"))
      local last = fake.script.seen[#fake.script.seen]
      assert.same({ "leave", a, "r", "leave" }, { last.event, last.id, last.room, last.reason })
      c.leave(b, "r")
      assert.same({}, c.rooms())
      assert.same({}, c.members("r"))
    end)

    it("raises for bad room names", function()
      local c = confab_fake.new():load(script("return {}")).confab
      assert.has_error(function() c.members("") end)
      assert.has_error(function() c.members(string.rep("x", 65)) end)
      assert.has_error(function() c.join(1, nil) end)
    end)

    it("records broadcasts and delivers them to members but `except`", function()
      local fake = confab_fake.new():load(script("return {}"))
      local c = fake.confab
      local a, b, d = fake:connect(), fake:connect(), fake:connect()
      c.join(a, "r")
      c.join(b, "r")
      assert.equal(1, c.broadcast("r", "hi", a))
      assert.equal(0, c.broadcast("empty", "x"))
      assert.same({ "hi" }, fake:sent(b))
      assert.same({}, fake:sent(a))
      assert.same({}, fake:sent(d))
      assert.same({ room = "r", data = "hi", except = a, binary = false, recipients = 1 },
                  fake.broadcasts[1])
      fake:clear()
      assert.same({}, fake:sent(b))
      assert.same({}, fake.broadcasts)
    end)
  end)

  describe("attributes", function()
    it("stores strings, numbers and booleans, and removes with nil", function()
      local fake = confab_fake.new():load(script("return {}"))
      local c = fake.confab
      local a = fake:connect()
      c.set(a, "s", "x")
      c.set(a, "n", 3)
      c.set(a, "b", false)
      assert.same({ "x", 3, false }, { c.get(a, "s"), c.get(a, "n"), c.get(a, "b") })
      c.set(a, "s", nil)
      assert.is_nil(c.get(a, "s"))
      assert.has_error(function() c.set(a, "t", {}) end)
    end)
  end)

  describe("urldecode", function()
    -- The same cases as spec/unit/urldecode_test.c (the C core's confab.urldecode).
    it("decodes like the core", function()
      local c = confab_fake.new():load(script("return {}")).confab
      for _, case in ipairs{
        { "", false, "" }, { "red", false, "red" },
        { "%E7%BA%A2%E8%89%B2", false, "红色" }, { "caf%c3%a9", false, "café" },
        { "a%2Fb", false, "a/b" }, { "%2541", false, "%41" }, { "%00x", false, "\0x" },
        { "a+b", false, "a+b" }, { "a+b%2B", true, "a b+" },
      } do
        assert.equal(case[3], c.urldecode(case[1], case[2]), case[1])
      end
      for _, bad in ipairs{ "%", "%4", "abc%", "%zz", "%%41", "%4g" } do
        assert.same({ nil, "bad escape" }, { c.urldecode(bad) }, bad)
      end
      assert.has_error(function() c.urldecode({}) end)
    end)
  end)

  describe("history", function()
    it("keeps the last N per room with increasing ids", function()
      local c = confab_fake.new{ history = 3 }:load(script("return {}")).confab
      assert.equal(0, c.history_last("r"))
      assert.same({ {}, true }, { c.history("r") })
      for i = 1, 5 do c.history_add("r", i * 10, "m" .. i) end
      assert.equal(50, c.history_last("r"))
      assert.same({ { "m3", "m4", "m5" }, false }, { c.history("r") })
      assert.same({ { "m3", "m4", "m5" }, true }, { c.history("r", 20) })
      assert.same({ { "m5" }, true }, { c.history("r", 40) })
      assert.same({ {}, true }, { c.history("r", 50) })
      assert.same({ { "m3", "m4", "m5" }, false }, { c.history("r", 15) })
    end)

    it("raises when an id does not increase", function()
      local c = confab_fake.new():load(script("return {}")).confab
      c.history_add("r", 5, "x")
      assert.has_error(function() c.history_add("r", 5, "y") end)
      assert.has_error(function() c.history_add("r", 4, "y") end)
      assert.is_true(c.history_add("other", 1, "y"))
    end)
  end)

  describe("timers", function()
    it("fires after and every with the fake clock, and can cancel", function()
      local fake = confab_fake.new{ now = 1000 }:load(script([[
        local log = {}
        confab.after(1.5, function() log[#log + 1] = "after@" .. confab.now() end)
        local h
        h = confab.every(1, function()
          log[#log + 1] = "every@" .. confab.now()
          if confab.now() >= 4000 then h:cancel() end
        end)
        local never = confab.after(0.5, function() log[#log + 1] = "never" end)
        never:cancel()
        return log
      ]]))
      assert.equal(1000, fake.confab.now())
      assert.equal(0, fake:advance(0.9))
      assert.equal(4, fake:advance(2.1))
      assert.equal(0, fake:advance(10))
      assert.same({ "every@2000", "after@2500", "every@3000", "every@4000" }, fake.script)
      assert.equal(14000, fake:now())
    end)

    it("records timer errors like hook errors", function()
      local fake = confab_fake.new():load(script("confab.after(1, function() error('tick') end)"))
      fake:advance(1)
      assert.equal("timer", fake.errors[1].event)
    end)
  end)

  describe("reload", function()
    local V1 = [[
      local n = 0
      confab.on("message", function(ev) confab.send(ev.id, "v1") end)
      confab.every(1, function() n = n + 1; confab.log("info", "v1 tick %d", n) end)
    ]]
    local V2 = [[
      local state = { reloaded = false }
      confab.on("message", function(ev) confab.send(ev.id, "v2 " .. tostring(confab.get(ev.id, "k"))) end)
      confab.on("reload", function()
        state.reloaded = true
        state.conns = confab.connections()
      end)
      return state
    ]]

    it("keeps connections, rooms, attributes and history; runs the reload hook", function()
      local path = script(V1)
      local fake = confab_fake.new():load(path)
      local a = fake:connect()
      fake.confab.set(a, "k", "kept")
      fake.confab.join(a, "r")
      fake.confab.history_add("r", 7, "old")
      assert.is_true(fake:reload(script(V2)))
      assert.is_true(fake.script.reloaded)
      assert.same({ a }, fake.script.conns)
      fake:message(a, "x")
      assert.same({ "v2 kept" }, fake:sent(a))
      assert.same({ a }, fake.confab.members("r"))
      assert.equal(7, fake.confab.history_last("r"))
    end)

    it("cancels the old script's timers", function()
      local fake = confab_fake.new():load(script(V1))
      fake:advance(1)
      assert.equal(1, #fake.logs)
      fake:reload(script(V2))
      fake:advance(5)
      assert.equal(1, #fake.logs)
    end)

    it("keeps the old script when the new one fails to load", function()
      local fake = confab_fake.new():load(script(V1))
      local a = fake:connect()
      local ok, err = fake:reload(script("syntax error here"))
      assert.is_nil(ok)
      assert.is_string(err)
      assert.equal("reload", fake.errors[1].event)
      fake:message(a, "x")
      assert.same({ "v1" }, fake:sent(a))
    end)
  end)

  describe("reading what was sent", function()
    it("decodes JSON, filters by type, and JSON-encodes table messages", function()
      local fake = confab_fake.new():load(script([[
        local cjson = require "cjson"
        confab.on("message", function(ev)
          local m = cjson.decode(ev.data)
          confab.send(ev.id, cjson.encode{ type = "a", n = m.n })
          confab.send(ev.id, cjson.encode{ type = "b", n = m.n + 1 })
        end)
      ]]))
      local a = fake:connect()
      fake:message(a, { n = 1 })
      assert.same({ { type = "a", n = 1 }, { type = "b", n = 2 } }, fake:json(a))
      assert.same({ { type = "b", n = 2 } }, fake:json(a, "b"))
      assert.same({ type = "a", n = 1 }, fake:last(a, "a"))
      fake:clear(a)
      assert.is_nil(fake:last(a))
    end)
  end)

  describe("the memory cap (memory = BYTES, like --script-memory)", function()
    local MB = 1024 * 1024

    it("fails a hook that grows past the cap with 'not enough memory', and the script goes on", function()
      local fake = confab_fake.new{ memory = 4 * MB }:load(script([[
        local kept = {}
        confab.on("message", function(ev)
          if ev.data == "grow" then
            local t = {}
            for i = 1, 1e7 do t[i] = ("x"):rep(100) .. i end
          elseif ev.data == "keep" then
            kept[#kept + 1] = string.rep("k", 1024 * 1024 - 64)
            confab.send(ev.id, tostring(#kept))
          else
            confab.send(ev.id, "still here")
          end
        end)
      ]]))
      local a = fake:connect()
      fake:message(a, "grow")
      assert.equal(1, #fake.errors)
      assert.equal("not enough memory", fake.errors[1].message)
      fake:message(a, "hello")
      assert.same({ "still here" }, fake:sent(a))
      -- What the script keeps between hooks counts too: the cap is reached within 4 messages.
      fake:clear(a)
      for _ = 1, 6 do fake:message(a, "keep") end
      local kept = fake:sent(a)
      assert.is_true(#kept >= 2 and #kept <= 4, "kept " .. #kept .. " MB")
      assert.equal(1 + 6 - #kept, #fake.errors)
      assert.equal("not enough memory", fake.errors[#fake.errors].message)
    end)

    it("fails one string.rep past the cap before building it", function()
      local fake = confab_fake.new{ memory = 4 * MB }:load(script([[
        confab.on("message", function(ev)
          confab.send(ev.id, tostring(select(2, pcall(string.rep, "x", 64 * 1024 * 1024))))
        end)
      ]]))
      local a = fake:connect()
      fake:message(a, "x")
      assert.same({ "not enough memory" }, fake:sent(a))
    end)

    it("refuses to load a script that holds more than the cap", function()
      local path = script("big = {} for i = 1, 1e6 do big[i] = ('b'):rep(50) .. i end")
      local ok, err = pcall(function() confab_fake.new{ memory = 2 * MB }:load(path) end)
      assert.is_false(ok)
      assert.matches("not enough memory", err)
      assert.has_no.errors(function() confab_fake.new{ memory = 256 * MB }:load(path) end)
    end)

    it("is not modelled without the option", function()
      local fake = confab_fake.new():load(script([[
        confab.on("message", function(ev) confab.send(ev.id, tostring(#string.rep("x", 8 * 1024 * 1024))) end)
      ]]))
      local a = fake:connect()
      fake:message(a, "x")
      assert.same({ tostring(8 * MB) }, fake:sent(a))
    end)
  end)
end)
