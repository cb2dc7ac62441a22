-- Specs of scripts/chat.lua against the protocol in README.md, driven through the confab_fake kit.
local confab_fake = require "confab_fake"
local cjson = require "cjson"

local SCRIPT = "scripts/chat.lua"
local fake

local function new(opts)
  fake = confab_fake.new(opts):load(SCRIPT)
  return fake
end

-- Connects and says hello; returns the id. `extra` adds fields to the hello.
local function user(name, extra)
  local id = assert(fake:connect())
  local hello = { type = "hello", name = name }
  for k, v in pairs(extra or {}) do hello[k] = v end
  fake:message(id, hello)
  return id
end

local function types(id)
  local list = {}
  for _, m in ipairs(fake:json(id)) do list[#list + 1] = m.type end
  return list
end

-- Sends one message and returns the error code it got back (nil if none).
local function refused(id, msg)
  fake:clear(id)
  fake:message(id, msg)
  local e = fake:last(id, "error")
  return e and e.code
end

local function say(id, room, text)
  fake:message(id, { type = "say", room = room, text = text })
end

local function texts(id, room)
  local list = {}
  for _, m in ipairs(fake:json(id, "message")) do
    if room == nil or m.room == room then list[#list + 1] = m.text end
  end
  return list
end

after_each(function()
  if fake then assert.same({}, fake.errors) end
  fake = nil
end)

describe("chat.lua", function()
  before_each(function() new() end)

  describe("hello", function()
    it("welcomes the user, then joins lobby with joined, members and history", function()
      local a = user("alice")
      assert.same({ "welcome", "joined", "members", "history" }, types(a))
      assert.same({ type = "welcome", name = "alice", epoch = fake.epoch, uid = a }, fake:json(a)[1])
      assert.same({ type = "joined", room = "lobby", name = "alice" }, fake:json(a)[2])
      assert.same({ type = "members", room = "lobby", members = { "alice" } }, fake:json(a)[3])
      assert.same({ type = "history", room = "lobby", messages = {}, complete = true, reset = true },
                  fake:json(a)[4])
      assert.matches('"messages":%[%]', fake:sent(a)[4])
      assert.equal("alice", fake.confab.get(a, "name"))
    end)

    it("tells lobby members about the newcomer", function()
      local a = user("alice")
      fake:clear()
      user("bob")
      assert.same({ type = "joined", room = "lobby", name = "bob" }, fake:last(a, "joined"))
      assert.same({ "alice", "bob" }, fake:last(a, "members").members)
    end)

    it("keeps names unique, case-insensitively", function()
      user("alice")
      local b = assert(fake:connect())
      for _, taken in ipairs{ "alice", "Alice", "ALICE", "ａｌｉｃｅ" } do
        assert.equal("name_taken", refused(b, { type = "hello", name = taken }))
      end
      user("Zoë")
      assert.equal("name_taken", refused(b, { type = "hello", name = "ZOË" }))
      user("Дима")
      assert.equal("name_taken", refused(b, { type = "hello", name = "дима" }))
      assert.is_nil(fake.confab.get(b, "name"))
    end)

    it("frees a name when its user disconnects", function()
      local a = user("alice")
      fake:disconnect(a, 1000)
      local b = user("Alice")
      assert.equal("Alice", fake.confab.get(b, "name"))
    end)

    it("accepts letters of any script, digits, _ and -, up to 24 characters", function()
      for _, name in ipairs{ "a", "bob_2", "x-y", "张三", "Ναταλία", "Ñandú", "さくら",
                             string.rep("é", 24), string.rep("w", 24) } do
        local id = user(name)
        assert.equal(name, fake.confab.get(id, "name"), name)
      end
    end)

    it("refuses bad names with bad_name", function()
      local b = assert(fake:connect())
      for _, name in ipairs{ "", string.rep("w", 25), "a b", "a!b", "a.b", "😀", "a\tb", "a\u{200B}b",
                             "a/b", "<script>" } do
        assert.equal("bad_name", refused(b, { type = "hello", name = name }), name)
      end
    end)

    it("refuses a missing or non-string name with bad_field", function()
      local b = assert(fake:connect())
      assert.equal("bad_field", refused(b, { type = "hello" }))
      assert.equal("bad_field", refused(b, { type = "hello", name = 5 }))
      assert.equal("bad_field", refused(b, { type = "hello", name = { "x" } }))
    end)

    it("refuses a second hello", function()
      local a = user("alice")
      assert.equal("bad_type", refused(a, { type = "hello", name = "other" }))
      assert.equal("alice", fake.confab.get(a, "name"))
    end)

    it("requires hello before anything else", function()
      local b = assert(fake:connect())
      for _, msg in ipairs{ { type = "say", room = "lobby", text = "hi" }, { type = "join", room = "x" },
                            { type = "rooms" }, { type = "typing", room = "lobby" } } do
        assert.equal("no_name", refused(b, msg))
      end
      assert.same({}, fake.confab.rooms_of(b))
    end)

    it("lets idle connections cost nothing: no joins, no broadcasts, nothing sent", function()
      local idle = { fake:connect(), fake:connect(), fake:connect() }
      assert.same({}, fake.confab.rooms())
      assert.same({}, fake.broadcasts)
      local a = user("alice")
      say(a, "lobby", "hello?")
      for _, id in ipairs(idle) do assert.same({}, fake:sent(id)) end
      assert.same({ a }, fake.confab.members("lobby"))
    end)
  end)

  describe("rooms", function()
    it("joins a room: history and members to the joiner, joined to the room only", function()
      local a, b, c = user("alice"), user("bob"), user("carol")
      fake:message(c, { type = "join", room = "dev" })
      fake:clear()
      fake:message(a, { type = "join", room = "dev" })
      assert.same({ "joined", "members", "history" }, types(a))
      assert.same({ "carol", "alice" }, fake:last(a, "members").members)
      assert.same({ type = "joined", room = "dev", name = "alice" }, fake:last(c, "joined"))
      assert.same({ "carol", "alice" }, fake:last(c, "members").members)
      assert.same({}, fake:sent(b))
    end)

    it("answers a join of a room the user is in with history and members only", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      fake:message(a, { type = "join", room = "lobby" })
      assert.same({ "history", "members" }, types(a))
      assert.same({}, fake:sent(b))
    end)

    it("leaves a room: left to everyone there including the leaver, new members to the rest", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      fake:message(a, { type = "leave", room = "lobby" })
      assert.same({ type = "left", room = "lobby", name = "alice" }, fake:last(a, "left"))
      assert.same({ type = "left", room = "lobby", name = "alice" }, fake:last(b, "left"))
      assert.same({ "bob" }, fake:last(b, "members").members)
      assert.is_nil(fake:last(a, "members"))
      assert.same({}, fake.confab.rooms_of(a))
      assert.equal("not_in_room", refused(a, { type = "leave", room = "lobby" }))
      assert.equal("not_in_room", refused(a, { type = "say", room = "lobby", text = "x" }))
    end)

    it("lets a connection be in several rooms and switch between them", function()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      fake:message(a, { type = "join", room = "ops" })
      assert.same({ "lobby", "dev", "ops" }, fake.confab.rooms_of(a))
      say(a, "dev", "in dev")
      say(a, "lobby", "in lobby")
      assert.same({ "in lobby" }, texts(b))
      assert.same({ "in dev" }, texts(a, "dev"))
      fake:message(a, { type = "leave", room = "lobby" })
      assert.same({ "dev", "ops" }, fake.confab.rooms_of(a))
    end)

    it("updates members when someone disconnects", function()
      local a, b = user("alice"), user("bob")
      fake:message(b, { type = "join", room = "dev" })
      fake:message(a, { type = "join", room = "dev" })
      fake:clear()
      fake:disconnect(b, 1001)
      for _, room in ipairs{ "lobby", "dev" } do
        local left, members
        for _, m in ipairs(fake:json(a)) do
          if m.room == room and m.type == "left" then left = m end
          if m.room == room and m.type == "members" then members = m end
        end
        assert.same({ type = "left", room = room, name = "bob" }, left)
        assert.same({ "alice" }, members.members)
      end
    end)

    it("refuses bad room names", function()
      local a = user("alice")
      for _, room in ipairs{ "", string.rep("r", 33), "a b", "dev#", "x/y", string.rep("文", 30) } do
        fake:advance(1)
        assert.equal("bad_room", refused(a, { type = "join", room = room }), room)
      end
      assert.equal("bad_field", refused(a, { type = "join" }))
      assert.equal("bad_field", refused(a, { type = "join", room = 7 }))
      assert.is_nil(refused(a, { type = "join", room = string.rep("r", 32) }))
      assert.is_nil(refused(a, { type = "join", room = "開発" }))
    end)

    it("limits the rooms of one connection", function()
      local a = user("alice")
      local code
      for i = 1, 40 do
        fake:advance(1)
        code = refused(a, { type = "join", room = "r" .. i }) or code
      end
      assert.equal("bad_room", code)
      assert.equal(32, #fake.confab.rooms_of(a))
    end)

    it("coalesces members broadcasts when a crowd joins, and the last list is complete", function()
      local ids = {}
      for i = 1, 30 do ids[i] = user("u" .. i) end
      local first = ids[1]
      local lists = fake:json(first, "members")
      assert.is_true(#lists < 30)
      fake:advance(5)
      local last = fake:last(first, "members")
      assert.equal(30, #last.members)
      assert.equal("u30", last.members[30])
      -- every joiner got a full list at once, whether the room got one or not
      for i = 1, 30 do
        local m = fake:json(ids[i], "members")[1]
        assert.equal(i, #m.members)
      end
      -- and every member saw every joined, in order
      local joined = fake:json(first, "joined")
      assert.equal(30, #joined)
      assert.equal("u30", joined[30].name)
    end)
  end)

  describe("messages", function()
    it("broadcasts a say with per-room increasing ids and the server time", function()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      fake:clear()
      say(a, "lobby", "one")
      fake:advance(1.25)
      say(b, "lobby", "two")
      say(a, "dev", "three")
      local lobby = fake:json(b, "message")
      assert.same({ type = "message", room = "lobby", id = 1, ts = fake:now() - 1250, from = "alice",
                    text = "one", kind = "say" }, lobby[1])
      assert.same({ type = "message", room = "lobby", id = 2, ts = fake:now(), from = "bob",
                    text = "two", kind = "say" }, lobby[2])
      assert.equal(1, fake:last(a, "message").id)
      assert.equal("dev", fake:last(a, "message").room)
      assert.equal(2, #lobby)
    end)

    it("costs one encode and one post per message, never a loop of sends", function()
      local a = user("alice")
      for i = 1, 20 do user("u" .. i) end
      local frame = cjson.encode{ type = "say", room = "lobby", text = "hi all" }
      local encodes, sends = 0, 0
      local real_encode, real_send = cjson.encode, fake.confab.send
      cjson.encode = function(...) encodes = encodes + 1; return real_encode(...) end
      fake.confab.send = function(...) sends = sends + 1; return real_send(...) end
      local before = #fake.posts
      local ok, err = pcall(fake.message, fake, a, frame)
      cjson.encode, fake.confab.send = real_encode, real_send
      assert(ok, err)
      assert.equal(1, encodes)
      assert.equal(0, sends)
      assert.equal(before + 1, #fake.posts)
      assert.equal(21, fake.posts[#fake.posts].recipients)
    end)

    it("stores messages in the core's history, encoded once", function()
      local a = user("alice")
      say(a, "lobby", "kept")
      local list = fake.confab.history("lobby")
      assert.equal(1, #list)
      assert.equal(fake.posts[#fake.posts].data, list[1])
    end)

    it("posts /me and me as kind me", function()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "me", room = "lobby", text = "waves" })
      say(a, "lobby", "/me dances")
      local got = fake:json(b, "message")
      assert.same({ "me", "waves" }, { got[1].kind, got[1].text })
      assert.same({ "me", "dances" }, { got[2].kind, got[2].text })
    end)

    it("refuses to post to a room the sender is not in", function()
      local a = user("alice")
      assert.equal("not_in_room", refused(a, { type = "say", room = "dev", text = "x" }))
      assert.equal("not_in_room", refused(a, { type = "me", room = "dev", text = "x" }))
      assert.equal(0, fake.confab.history_last("dev"))
    end)

    it("checks text: 1-2000 characters, no control characters but newline and tab", function()
      local a = user("alice")
      local cases = {
        { "", "bad_text" }, { string.rep("x", 2001), "too_long" }, { "bell\7", "bad_text" },
        { "nul\0", "bad_text" }, { "del\127", "bad_text" }, { "c1\u{85}", "bad_text" },
        { "esc\27[31m", "bad_text" }, { "cr\r", "bad_text" },
      }
      for _, c in ipairs(cases) do
        fake:advance(1)
        assert.equal(c[2], refused(a, { type = "say", room = "lobby", text = c[1] }), c[1])
      end
      assert.equal("bad_field", refused(a, { type = "say", room = "lobby", text = 12 }))
      assert.equal("bad_field", refused(a, { type = "say", room = "lobby" }))
      for _, ok in ipairs{ string.rep("x", 2000), string.rep("字", 2000), "two\nlines", "tab\there" } do
        fake:advance(1)
        assert.is_nil(refused(a, { type = "say", room = "lobby", text = ok }))
        assert.equal(ok, fake:last(a, "message").text)
      end
    end)

    it("replays the history on join, oldest first", function()
      local a = user("alice")
      for i = 1, 3 do say(a, "lobby", "m" .. i) end
      local b = user("bob")
      local h = fake:last(b, "history")
      assert.same({ "m1", "m2", "m3" }, { h.messages[1].text, h.messages[2].text, h.messages[3].text })
      assert.same({ 1, 2, 3 }, { h.messages[1].id, h.messages[2].id, h.messages[3].id })
      assert.is_true(h.complete)
      assert.is_true(h.reset)
    end)

    it("says complete=false on join when older messages fell out of the ring", function()
      new{ history = 3 }
      local a = user("alice")
      for i = 1, 5 do say(a, "lobby", "m" .. i) end
      local h = fake:last(user("bob"), "history")
      assert.same({ 3, 4, 5 }, { h.messages[1].id, h.messages[2].id, h.messages[3].id })
      assert.is_false(h.complete)
    end)
  end)

  describe("resume", function()
    -- alice sees messages 1-2 of lobby and 1 of dev, drops, then 3-4 and 2 are posted.
    local function scenario()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      fake:message(b, { type = "join", room = "dev" })
      say(b, "lobby", "l1")
      say(b, "lobby", "l2")
      say(b, "dev", "d1")
      fake:disconnect(a, 1006)
      say(b, "lobby", "l3")
      say(b, "lobby", "l4")
      say(b, "dev", "d2")
      return b
    end

    local function history_of(id, room)
      for _, m in ipairs(fake:json(id, "history")) do
        if m.room == room then return m end
      end
    end

    local function ids(h)
      local list = {}
      for _, m in ipairs(h.messages) do list[#list + 1] = m.id end
      return list
    end

    it("sends exactly the missed messages of every room", function()
      local b = scenario()
      fake:clear()
      local a = user("alice", { resume = { epoch = fake.epoch, rooms = { lobby = 2, dev = 1 } } })
      assert.same({ "dev", "lobby" }, (function()
        local r = fake.confab.rooms_of(a)
        table.sort(r)
        return r
      end)())
      local lobby, dev = history_of(a, "lobby"), history_of(a, "dev")
      assert.same({ 3, 4 }, ids(lobby))
      assert.same({ "l3", "l4" }, { lobby.messages[1].text, lobby.messages[2].text })
      assert.is_true(lobby.complete)
      assert.is_false(lobby.reset)
      assert.same({ 2 }, ids(dev))
      assert.is_false(dev.reset)
      assert.equal("alice", fake:last(b, "joined").name)
    end)

    it("sends an empty, complete history when nothing was missed", function()
      scenario()
      local a = user("alice", { resume = { epoch = fake.epoch, rooms = { lobby = 4 } } })
      local h = history_of(a, "lobby")
      assert.same({}, h.messages)
      assert.is_true(h.complete)
      assert.is_false(h.reset)
    end)

    it("resets with the full history when missed messages fell out of the ring", function()
      new{ history = 3 }
      local b = user("bob")
      for i = 1, 6 do say(b, "lobby", "m" .. i) end
      local a = user("alice", { resume = { epoch = fake.epoch, rooms = { lobby = 1 } } })
      local h = history_of(a, "lobby")
      assert.same({ 4, 5, 6 }, ids(h))
      assert.is_false(h.complete)
      assert.is_true(h.reset)
    end)

    it("resets with the full history when the epoch is another server run's", function()
      scenario()
      local a = user("alice", { resume = { epoch = fake.epoch - 1, rooms = { lobby = 2 } } })
      local h = history_of(a, "lobby")
      assert.same({ 1, 2, 3, 4 }, ids(h))
      assert.is_false(h.complete)
      assert.is_true(h.reset)
    end)

    it("resets when the client claims ids the room never had", function()
      scenario()
      local a = user("alice", { resume = { epoch = fake.epoch, rooms = { lobby = 99 } } })
      local h = history_of(a, "lobby")
      assert.same({ 1, 2, 3, 4 }, ids(h))
      assert.is_true(h.reset)
    end)

    it("joins lobby when the resume lists no rooms", function()
      local a = user("alice", { resume = { epoch = fake.epoch, rooms = {} } })
      assert.same({ "lobby" }, fake.confab.rooms_of(a))
    end)

    it("refuses a malformed resume without taking the name", function()
      local b = assert(fake:connect())
      local bad = {
        { "x", "bad_field" }, { { epoch = "1", rooms = {} }, "bad_field" },
        { { epoch = 1, rooms = "lobby" }, "bad_field" }, { { epoch = 1, rooms = { lobby = "3" } }, "bad_field" },
        { { epoch = 1, rooms = { lobby = -1 } }, "bad_field" }, { { epoch = 1, rooms = { lobby = 1.5 } }, "bad_field" },
        { { epoch = 1, rooms = { ["no way"] = 1 } }, "bad_room" },
      }
      for _, c in ipairs(bad) do
        fake:advance(1)
        assert.equal(c[2], refused(b, { type = "hello", name = "alice", resume = c[1] }))
      end
      assert.is_nil(fake.confab.get(b, "name"))
      fake:advance(1)
      assert.is_nil(refused(b, { type = "hello", name = "alice" }))
    end)
  end)

  describe("direct messages", function()
    it("go to the target and echo to the sender only", function()
      local a, b, c = user("alice"), user("bob"), user("carol")
      fake:clear()
      fake:message(a, { type = "dm", to = "BOB", text = "psst" })
      local expect = { type = "dm", pair = a .. "-" .. b, id = 1, from = "alice", to = "bob",
                       text = "psst", ts = fake:now() }
      assert.same({ expect }, fake:json(b))
      assert.same({ expect }, fake:json(a))
      assert.same({}, fake:sent(c))
      assert.same({}, fake.broadcasts)
    end)

    it("to a name longer than any name is no_such_user, with its cid", function()
      local a = user("alice")
      fake:clear()
      fake:message(a, { type = "dm", to = string.rep("z", 70), text = "x", cid = "c1" })
      assert.same({ "no_such_user", "c1" }, { fake:last(a, "error").code, fake:last(a, "error").cid })
    end)

    it("to oneself arrive once", function()
      local a = user("alice")
      fake:clear()
      fake:message(a, { type = "dm", to = "alice", text = "note" })
      assert.equal(1, #fake:json(a, "dm"))
    end)

    it("work with /msg", function()
      local a, b = user("alice"), user("bob")
      say(a, "lobby", "/msg bob hello there\nfriend")
      assert.equal("hello there\nfriend", fake:last(b, "dm").text)
      assert.equal(0, fake.confab.history_last("lobby"))
    end)

    it("refuse unknown users and bad fields", function()
      local a = user("alice")
      assert.equal("no_such_user", refused(a, { type = "dm", to = "nobody", text = "x" }))
      assert.equal("bad_field", refused(a, { type = "dm", text = "x" }))
      assert.equal("bad_text", refused(a, { type = "dm", to = "alice", text = "" }))
      assert.equal("too_long", refused(a, { type = "dm", to = "alice", text = string.rep("y", 2001) }))
      assert.equal("bad_field", refused(a, { type = "say", room = "lobby", text = "/msg bob" }))
    end)
  end)

  describe("nick", function()
    it("renames in every room, updates members and frees the old name", function()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      fake:message(b, { type = "join", room = "dev" })
      fake:clear()
      fake:message(a, { type = "nick", name = "alicia" })
      local renamed = fake:json(b, "renamed")
      assert.same({ { type = "renamed", room = "lobby", from = "alice", to = "alicia" },
                    { type = "renamed", room = "dev", from = "alice", to = "alicia" } }, renamed)
      assert.same(renamed, fake:json(a, "renamed"))
      assert.same({ "alicia", "bob" }, fake:last(b, "members").members)
      assert.equal("alicia", fake.confab.get(a, "name"))
      local c = user("alice")
      assert.equal("alice", fake.confab.get(c, "name"))
      say(a, "lobby", "hi")
      assert.equal("alicia", fake:last(b, "message").from)
    end)

    it("works with /nick and allows changing one's own case", function()
      local a = user("alice")
      say(a, "lobby", "/nick Alice")
      assert.equal("Alice", fake.confab.get(a, "name"))
    end)

    it("refuses taken and bad names", function()
      local a = user("alice")
      user("bob")
      assert.equal("name_taken", refused(a, { type = "nick", name = "Bob" }))
      assert.equal("bad_name", refused(a, { type = "nick", name = "b b" }))
      assert.equal("bad_field", refused(a, { type = "nick" }))
      assert.equal("bad_name", refused(a, { type = "say", room = "lobby", text = "/nick" }))
      assert.equal("alice", fake.confab.get(a, "name"))
    end)

    it("answers with info when the user is in no room or keeps the same name", function()
      local a = user("alice")
      fake:clear()
      fake:message(a, { type = "nick", name = "alice" })
      assert.same({ "info" }, types(a))
      fake:message(a, { type = "leave", room = "lobby" })
      fake:clear()
      fake:message(a, { type = "nick", name = "al" })
      assert.same({ "info" }, types(a))
    end)
  end)

  describe("typing", function()
    it("goes to the others in the room, is throttled and never stored", function()
      local a, b, c = user("alice"), user("bob"), user("carol")
      fake:message(c, { type = "leave", room = "lobby" })
      fake:clear()
      fake:message(a, { type = "typing", room = "lobby" })
      assert.same({ { type = "typing", room = "lobby", name = "alice" } }, fake:json(b))
      assert.same({}, fake:sent(a))
      assert.same({}, fake:sent(c))
      fake:advance(1)
      fake:message(a, { type = "typing", room = "lobby" })
      assert.equal(1, #fake:json(b, "typing"))
      fake:advance(1)
      fake:message(a, { type = "typing", room = "lobby" })
      assert.equal(2, #fake:json(b, "typing"))
      assert.equal(0, fake.confab.history_last("lobby"))
    end)

    it("starts afresh after the user's message, which ends the notice at the others", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      fake:message(a, { type = "typing", room = "lobby" })
      say(a, "lobby", "done typing")
      fake:message(a, { type = "typing", room = "lobby" })
      assert.equal(2, #fake:json(b, "typing"))
    end)

    it("does not count against flood control", function()
      local a = user("alice")
      fake:advance(10)
      for _ = 1, 30 do fake:message(a, { type = "typing", room = "lobby" }) end
      for i = 1, 10 do say(a, "lobby", "m" .. i) end
      assert.equal(10, fake.confab.history_last("lobby"))
    end)

    it("refuses rooms the user is not in", function()
      local a = user("alice")
      assert.equal("not_in_room", refused(a, { type = "typing", room = "dev" }))
      assert.equal("bad_field", refused(a, { type = "typing" }))
    end)
  end)

  describe("who and rooms", function()
    it("who answers with the members of a room", function()
      local a = user("alice")
      user("bob")
      fake:clear()
      fake:message(a, { type = "who", room = "lobby" })
      assert.same({ { type = "members", room = "lobby", members = { "alice", "bob" } } }, fake:json(a))
      fake:clear()
      fake:message(a, { type = "who", room = "empty" })
      assert.matches('"members":%[%]', fake:sent(a)[1])
    end)

    it("/who answers with an info line", function()
      local a = user("alice")
      user("bob")
      fake:clear()
      say(a, "lobby", "/who")
      local info = fake:last(a, "info").text
      assert.matches("alice", info)
      assert.matches("bob", info)
    end)

    it("rooms and /rooms list rooms with member counts, sorted", function()
      local a, b = user("alice"), user("bob")
      fake:message(b, { type = "join", room = "dev" })
      fake:clear()
      fake:message(a, { type = "rooms" })
      say(a, "lobby", "/rooms")
      local expect = { type = "rooms", rooms = { { name = "dev", members = 1 }, { name = "lobby", members = 2 } } }
      assert.same({ expect, expect }, fake:json(a))
    end)

    it("an empty room list is a JSON array", function()
      local a = user("alice")
      fake:message(a, { type = "leave", room = "lobby" })
      fake:clear()
      fake:message(a, { type = "rooms" })
      assert.equal('"rooms":[]', fake:sent(a)[1]:match('"rooms":%[%]'))
    end)
  end)

  describe("commands", function()
    it("/join, /leave ROOM and /leave in the current room", function()
      local a = user("alice")
      say(a, "lobby", "/join dev")
      assert.same({ "lobby", "dev" }, fake.confab.rooms_of(a))
      say(a, "lobby", "/JOIN ops")
      say(a, "lobby", "/leave dev")
      assert.same({ "lobby", "ops" }, fake.confab.rooms_of(a))
      say(a, "ops", "/leave")
      assert.same({ "lobby" }, fake.confab.rooms_of(a))
      assert.equal("bad_room", refused(a, { type = "say", room = "lobby", text = "/join" }))
      assert.equal("bad_room", refused(a, { type = "say", room = "lobby", text = "/join a b" }))
      assert.equal("not_in_room", refused(a, { type = "say", room = "lobby", text = "/leave dev" }))
    end)

    it("/help answers with the command list", function()
      local a = user("alice")
      fake:clear()
      say(a, "lobby", "/help")
      local info = fake:last(a, "info").text
      for _, cmd in ipairs{ "/join", "/leave", "/nick", "/msg", "/me", "/who", "/rooms", "/help" } do
        assert.truthy(info:find(cmd, 1, true), cmd)
      end
    end)

    it("answers unknown commands with unknown_command and a help line", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      for _, text in ipairs{ "/dance", "/", "//x", "/ join dev" } do
        assert.equal("unknown_command", refused(a, { type = "say", room = "lobby", text = text }))
        assert.matches("/help", fake:last(a, "error").message)
      end
      assert.same({}, fake:sent(b))
      assert.equal(0, fake.confab.history_last("lobby"))
    end)

    it("are not posted to the room", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      say(a, "lobby", "/help")
      say(a, "lobby", "/who")
      assert.same({}, fake:sent(b))
    end)
  end)

  describe("bad input", function()
    it("answers each bad frame with an error to the sender only", function()
      local a, b = user("alice"), user("bob")
      local cases = {
        { "not json", "bad_json" }, { "{", "bad_json" }, { '{"type":"say"', "bad_json" },
        { "[1,2]", "bad_json" }, { "[]", "bad_json" }, { "3", "bad_json" }, { '"say"', "bad_json" },
        { "null", "bad_json" }, { "", "bad_json" },
        { "{}", "bad_type" }, { '{"type":5}', "bad_type" }, { '{"type":"shout"}', "bad_type" },
        { '{"type":null}', "bad_type" }, { '{"type":["say"]}', "bad_type" },
        { '{"type":"say","room":"lobby"}', "bad_field" }, { '{"type":"say","text":"x"}', "bad_field" },
        { '{"type":"say","room":{},"text":"x"}', "bad_field" }, { '{"type":"me","room":"lobby","text":true}', "bad_field" },
        { '{"type":"leave"}', "bad_field" }, { '{"type":"who","room":1}', "bad_field" },
        { '{"type":"nick","name":null}', "bad_field" }, { '{"type":"dm","to":3,"text":"x"}', "bad_field" },
        { '{"type":"say","room":"no such","text":"x"}', "bad_room" },
      }
      fake:clear()
      for _, c in ipairs(cases) do
        fake:advance(1)
        assert.equal(c[2], refused(a, c[1]), c[1])
        assert.equal(1, #fake:sent(a), c[1])
      end
      assert.same({}, fake:sent(b))
      assert.same({}, fake.broadcasts)
    end)

    it("answers a binary frame with bad_json", function()
      local a = user("alice")
      fake:clear()
      fake:message(a, '{"type":"rooms"}', true)
      assert.equal("bad_json", fake:last(a, "error").code)
    end)

    it("keeps the connection open after errors", function()
      local a, b = user("alice"), user("bob")
      refused(a, "garbage")
      say(a, "lobby", "still here")
      assert.same({ "still here" }, texts(b))
      assert.is_true(fake:connected(a))
    end)
  end)

  describe("flood control", function()
    it("allows a burst of 10, then refuses with flood", function()
      local a, b = user("alice"), user("bob")
      fake:advance(10)
      fake:clear()
      for i = 1, 12 do say(a, "lobby", "m" .. i) end
      assert.equal(10, #texts(b))
      assert.equal(2, #fake:json(a, "error"))
      assert.equal("flood", fake:last(a, "error").code)
    end)

    it("does not charge the hello: a new user has its whole burst", function()
      local a, b = user("alice"), user("bob")
      for i = 1, 11 do say(a, "lobby", "m" .. i) end
      assert.equal(10, #texts(b))
      assert.equal("flood", fake:last(a, "error").code)
    end)

    it("refills 5 tokens per second", function()
      local a, b = user("alice"), user("bob")
      fake:advance(10)
      for i = 1, 10 do say(a, "lobby", "burst" .. i) end
      assert.equal("flood", refused(a, { type = "say", room = "lobby", text = "too soon" }))
      fake:advance(0.2)
      assert.is_nil(refused(a, { type = "say", room = "lobby", text = "one more" }))
      assert.equal("flood", refused(a, { type = "say", room = "lobby", text = "not yet" }))
      -- a steady 5 per second is fine forever
      fake:clear(a)
      for _ = 1, 5 do
        fake:advance(1)
        for i = 1, 5 do say(a, "lobby", "steady" .. i) end
        assert.is_nil(fake:last(a, "error"))
      end
      assert.equal(36, fake.confab.history_last("lobby"))
      assert.same({}, fake:json(b, "error"))
    end)

    it("counts dms, commands and bad frames too", function()
      local a = user("alice")
      user("bob")
      fake:advance(10)
      for _ = 1, 3 do fake:message(a, { type = "dm", to = "bob", text = "x" }) end
      for _ = 1, 3 do say(a, "lobby", "/help") end
      for _ = 1, 4 do fake:message(a, "garbage") end
      assert.equal("flood", refused(a, { type = "me", room = "lobby", text = "x" }))
    end)

    it("is per connection", function()
      local a, b = user("alice"), user("bob")
      fake:advance(10)
      for i = 1, 11 do say(a, "lobby", "a" .. i) end
      assert.is_nil(refused(b, { type = "say", room = "lobby", text = "b is fine" }))
    end)
  end)

  describe("reload", function()
    it("keeps names unique and known after a reload", function()
      local a, b = user("alice"), user("bob")
      say(a, "lobby", "before")
      assert.is_true(fake:reload())
      local c = assert(fake:connect())
      assert.equal("name_taken", refused(c, { type = "hello", name = "ALICE" }))
      fake:message(c, { type = "hello", name = "carol" })
      fake:message(c, { type = "dm", to = "alice", text = "found you" })
      assert.equal("found you", fake:last(a, "dm").text)
      fake:message(b, { type = "nick", name = "carol" })
      assert.equal("name_taken", fake:last(b, "error").code)
    end)

    it("continues message ids and membership checks from the core", function()
      local a, b = user("alice"), user("bob")
      say(a, "lobby", "one")
      say(a, "lobby", "two")
      fake:reload()
      fake:clear()
      say(b, "lobby", "three")
      assert.equal(3, fake:last(a, "message").id)
      assert.equal("not_in_room", refused(a, { type = "say", room = "dev", text = "x" }))
      local h = fake:last(user("carol"), "history")
      assert.equal(3, #h.messages)
    end)

    it("forgets a user that disconnects after the reload", function()
      local a = user("alice")
      fake:reload()
      fake:disconnect(a)
      local b = user("alice")
      assert.equal("alice", fake.confab.get(b, "name"))
    end)
  end)

  describe("isolation", function()
    it("drops only the event whose hook failed; everyone else goes on", function()
      local a, b = user("alice"), user("bob")
      fake.confab.on("message", function(ev)
        if ev.data:find("boom", 1, true) then error("extension failed") end
      end, 10)
      say(a, "lobby", "boom")
      say(a, "lobby", "fine")
      say(b, "lobby", "also fine")
      assert.same({ "fine", "also fine" }, texts(a))
      assert.equal(1, #fake.errors)
      assert.matches("extension failed", fake.errors[1].message)
      fake.errors = {}
    end)

    it("lets lower-priority handlers see every message (chat.lua never ends the chain)", function()
      local seen = 0
      fake.confab.on("message", function() seen = seen + 1 end, -1)
      local a = user("alice")
      say(a, "lobby", "x")
      fake:message(a, "garbage")
      assert.equal(3, seen)
    end)

    it("keeps one user's state from leaking into another's", function()
      local a, b = user("alice"), user("bob")
      fake:advance(10)
      for i = 1, 11 do say(a, "lobby", "a" .. i) end
      fake:message(a, { type = "typing", room = "lobby" })
      fake:clear()
      fake:message(b, { type = "typing", room = "lobby" })
      assert.equal("bob", fake:last(a, "typing").name)
    end)
  end)

  describe("client ids (cid)", function()
    it("echo the cid in the message a say made, to everyone", function()
      local a, b = user("alice"), user("bob")
      fake:clear()
      fake:message(a, { type = "say", room = "lobby", text = "hi", cid = "c-1" })
      assert.equal("c-1", fake:last(a, "message").cid)
      assert.equal("c-1", fake:last(b, "message").cid)
      local list = fake.confab.history("lobby")
      assert.equal("c-1", cjson.decode(list[#list]).cid)
    end)

    it("come back on the error that refused the message, flood included", function()
      local a = user("alice")
      for i = 1, 10 do say(a, "lobby", "x" .. i) end
      fake:clear()
      fake:message(a, { type = "say", room = "lobby", text = "one too many", cid = "c-11" })
      assert.same({ type = "error", code = "flood", message = "too many messages; slow down",
                    cid = "c-11" }, fake:last(a, "error"))
      fake:advance(1)
      fake:message(a, { type = "say", room = "nowhere", text = "x", cid = "c-12" })
      assert.same({ "not_in_room", "c-12" }, { fake:last(a, "error").code, fake:last(a, "error").cid })
    end)

    it("are answered with ok when nothing else carries them, exactly once", function()
      local a = user("alice")
      fake:clear()
      fake:message(a, { type = "say", room = "lobby", text = "/join dev", cid = "j1" })
      local with = {}
      for _, m in ipairs(fake:json(a)) do if m.cid then with[#with + 1] = m.type end end
      assert.same({ "ok" }, with)
      fake:clear()
      fake:message(a, { type = "dm", to = "alice", text = "self", cid = "d1" })
      with = {}
      for _, m in ipairs(fake:json(a)) do if m.cid then with[#with + 1] = m.type end end
      assert.same({ "dm" }, with)
    end)

    it("must be short strings of letters, digits, _ and -", function()
      local a = user("alice")
      for _, bad in ipairs{ "", string.rep("x", 41), "a b", 7, {} } do
        fake:advance(1)
        assert.equal("bad_field", refused(a, { type = "say", room = "lobby", text = "x", cid = bad }))
      end
      assert.same({}, texts(a))
    end)
  end)

  describe("text rules", function()
    it("refuses bidi embedding, override and isolate controls", function()
      local a = user("alice")
      for _, cp in ipairs{ 0x202A, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069 } do
        fake:advance(1)
        assert.equal("bad_text", refused(a, { type = "say", room = "lobby", text = "a" .. utf8.char(cp) .. "b" }))
      end
      fake:advance(1)
      assert.is_nil(refused(a, { type = "say", room = "lobby", text = "سارة: 123 apples \u{200F}" }))
    end)

    it("refuses a text that is only whitespace, Unicode spaces included", function()
      local a = user("alice")
      for _, t in ipairs{ " ", "\n\t  \n", "\u{3000}\u{A0}", "\u{200B}" } do
        fake:advance(1)
        assert.equal("bad_text", refused(a, { type = "say", room = "lobby", text = t }))
      end
      fake:advance(1)
      assert.equal("bad_text", refused(a, { type = "dm", to = "alice", text = "   " }))
      assert.same({}, texts(a))
    end)
  end)

  describe("name rules", function()
    it("refuses a name mixing scripts (Cyrillic а in аlice)", function()
      local a = assert(fake:connect())
      fake:message(a, { type = "hello", name = "\u{430}lice" })
      local e = fake:last(a, "error")
      assert.equal("bad_name", e.code)
      assert.matches("mixes Cyrillic and Latin", e.message)
      assert.is_nil(refused(a, { type = "hello", name = "Анна_2" }))
    end)

    it("allows single-script names in many scripts, and Japanese kanji with kana", function()
      for _, n in ipairs{ "سارة", "Ελένη", "Дмитрий", "דוד", "山田たろう", "김민준", "प्रिया", "ana-1" } do
        local id = assert(fake:connect())
        fake:message(id, { type = "hello", name = n })
        assert.equal(n, fake:last(id, "welcome") and fake:last(id, "welcome").name, n)
      end
    end)

    it("refuses a whole-script look-alike of a name in use, and 0/1 for o/l", function()
      user("ape")
      user("lol")
      local x = assert(fake:connect())
      fake:message(x, { type = "hello", name = "\u{430}\u{440}\u{435}" })   -- Cyrillic аре
      assert.same("name_confusable", fake:last(x, "error").code)
      assert.matches("looks too much like ape", fake:last(x, "error").message)
      assert.equal("name_confusable", refused(x, { type = "hello", name = "L01" }))
      assert.equal("name_confusable", refused(x, { type = "hello", name = "\u{410}\u{420}\u{415}" }))
      assert.is_nil(refused(x, { type = "hello", name = "apex" }))
      fake:advance(1)
      assert.equal("name_confusable", refused(x, { type = "nick", name = "1ol" }))
    end)

    it("says a long name is too long, in characters and bytes", function()
      local x = assert(fake:connect())
      fake:message(x, { type = "hello", name = string.rep("a", 25) })
      assert.equal("that name is too long (25 characters; at most 24)", fake:last(x, "error").message)
      fake:message(x, { type = "hello", name = string.rep("山", 21) })
      assert.equal("that name is too long (63 bytes; at most 60)", fake:last(x, "error").message)
    end)
  end)

  describe("keyed users", function()
    local KEY_A, KEY_B = "alice-key-0123456789", "bob-key-0123456789ab"

    local function keyed(name, key, resume)
      return user(name, { key = key, resume = resume })
    end

    it("refuse a malformed key", function()
      local x = assert(fake:connect())
      for _, k in ipairs{ "short", string.rep("k", 61), "with space 0123456789", 5 } do
        assert.equal("bad_field", refused(x, { type = "hello", name = "x", key = k }))
      end
    end)

    it("leave quietly when they come back within the grace period", function()
      local a, b = keyed("alice", KEY_A), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      fake:clear()
      fake:disconnect(a, 1001)
      assert.same({}, fake:json(b, "left"))
      fake:message(b, { type = "who", room = "lobby" })
      local listed = fake:last(b, "members").members
      table.sort(listed)
      assert.same({ "alice", "bob" }, listed)   -- still listed during the grace period
      -- someone else cannot take the name meanwhile
      local x = assert(fake:connect())
      assert.equal("name_taken", refused(x, { type = "hello", name = "alice", key = KEY_B }))
      fake:advance(2)
      local a2 = keyed("alice", KEY_A, { epoch = fake.epoch, rooms = { lobby = 0, dev = 0 } })
      assert.equal("alice", fake:last(a2, "welcome").name)
      fake:advance(10)
      assert.same({}, fake:json(b, "left"))
      assert.same({}, fake:json(b, "joined"))
      assert.same({ "dev", "lobby" }, (function()
        local l = {}
        for _, m in ipairs(fake:json(a2, "joined")) do l[#l + 1] = m.room end
        return l
      end)())
    end)

    it("are announced as left once the grace period ends, and free the name", function()
      local a, b = keyed("alice", KEY_A), user("bob")
      fake:clear()
      fake:disconnect(a, 1001)
      fake:advance(4.9)
      assert.same({}, fake:json(b, "left"))
      fake:advance(0.2)
      assert.same({ { type = "left", room = "lobby", name = "alice" } }, fake:json(b, "left"))
      assert.same({ "bob" }, fake:last(b, "members").members)
      local x = assert(fake:connect())
      assert.is_nil(refused(x, { type = "hello", name = "alice", key = KEY_B }))
    end)

    it("hear left for the rooms they do not come back to", function()
      local a, b = keyed("alice", KEY_A), user("bob")
      fake:message(b, { type = "join", room = "dev" })
      fake:message(a, { type = "join", room = "dev" })
      fake:clear()
      fake:disconnect(a, 1001)
      keyed("alice", KEY_A, { epoch = fake.epoch, rooms = { lobby = 0 } })
      assert.same({ { type = "left", room = "dev", name = "alice" } }, fake:json(b, "left"))
    end)

    it("replace their own older connection, quietly", function()
      local a, b = keyed("alice", KEY_A), user("bob")
      fake:clear()
      local a2 = keyed("alice", KEY_A, { epoch = fake.epoch, rooms = { lobby = 0 } })
      assert.equal("alice", fake:last(a2, "welcome").name)
      assert.same({ 4000, "replaced by a newer connection" }, { fake:closed(a) })
      fake:advance(10)
      assert.same({}, fake:json(b, "left"))
      assert.same({}, fake:json(b, "joined"))
      fake:message(b, { type = "who", room = "lobby" })
      local m = fake:last(b, "members").members
      table.sort(m)
      assert.same({ "alice", "bob" }, m)
    end)

    -- Every members list `id` received names each user once (names compare case-insensitively).
    local function lists_unique(id)
      for _, m in ipairs(fake:json(id, "members")) do
        local seen = {}
        for _, n in ipairs(m.members) do
          assert.is_nil(seen[n:lower()], "listed twice: " .. table.concat(m.members, ", "))
          seen[n:lower()] = true
        end
      end
    end

    it("back within the grace period under another case of the name are renamed, not listed twice", function()
      local a, b = keyed("ann", KEY_A), user("bob")
      fake:clear()
      fake:disconnect(a, 1001)
      local a2 = keyed("ANN", KEY_A)
      assert.equal("ANN", fake:last(a2, "welcome").name)
      fake:advance(10)
      assert.same({ { type = "renamed", room = "lobby", from = "ann", to = "ANN" } },
                  fake:json(b, "renamed"))
      assert.same({}, fake:json(b, "joined"))
      assert.same({}, fake:json(b, "left"))
      assert.same({ "bob", "ANN" }, fake:last(b, "members").members)
      assert.same({ "bob", "ANN" }, fake:last(a2, "members").members)
      lists_unique(b)
      lists_unique(a2)
    end)

    it("back within the grace period under another name are renamed where they return, left elsewhere", function()
      local a, b = keyed("alice", KEY_A), user("bob")
      fake:message(b, { type = "join", room = "dev" })
      fake:message(a, { type = "join", room = "dev" })
      fake:clear()
      fake:disconnect(a, 1001)
      local c = keyed("carol", KEY_A, { epoch = fake.epoch, rooms = { lobby = 0 } })
      assert.equal(a, fake:last(c, "welcome").uid)
      fake:advance(10)
      assert.same({ { type = "renamed", room = "lobby", from = "alice", to = "carol" } },
                  fake:json(b, "renamed"))
      assert.same({ { type = "left", room = "dev", name = "alice" } }, fake:json(b, "left"))
      assert.same({}, fake:json(b, "joined"))
      fake:message(b, { type = "who", room = "lobby" })
      assert.same({ "bob", "carol" }, fake:last(b, "members").members)
      lists_unique(b)
      lists_unique(c)
      local x = assert(fake:connect())   -- the old name is free, as after a nick
      assert.is_nil(refused(x, { type = "hello", name = "alice", key = KEY_B }))
    end)

    it("replace their own older connection under another case of the name with one renamed", function()
      local a, b = keyed("ann", KEY_A), user("bob")
      fake:clear()
      local a2 = keyed("ANN", KEY_A)
      assert.same({ 4000, "replaced by a newer connection" }, { fake:closed(a) })
      fake:advance(10)
      assert.same({ { type = "renamed", room = "lobby", from = "ann", to = "ANN" } },
                  fake:json(b, "renamed"))
      assert.same({}, fake:json(b, "joined"))
      assert.same({}, fake:json(b, "left"))
      fake:message(b, { type = "who", room = "lobby" })
      assert.same({ "bob", "ANN" }, fake:last(b, "members").members)
      lists_unique(b)
      lists_unique(a2)
    end)

    it("keep direct messages: stored per pair, replayed on hello, resumed from an id", function()
      local a, b = keyed("alice", KEY_A), keyed("bob", KEY_B)
      fake:message(a, { type = "dm", to = "bob", text = "one" })
      fake:message(b, { type = "dm", to = "alice", text = "two" })
      fake:disconnect(b, 1001)
      fake:advance(1)
      local b2 = keyed("bob", KEY_B)
      local h = fake:last(b2, "dm_history")
      assert.same({ a .. "-" .. b, "alice", true, true }, { h.pair, h.with, h.complete, h.reset })
      assert.same({ "one", "two" }, { h.messages[1].text, h.messages[2].text })
      fake:message(a, { type = "dm", to = "bob", text = "three" })
      fake:disconnect(b2, 1001)
      fake:advance(1)
      local b3 = keyed("bob", KEY_B, { epoch = fake.epoch, rooms = { lobby = 0 }, dms = { [h.pair] = 2 } })
      h = fake:last(b3, "dm_history")
      assert.same({ false, true }, { h.reset, h.complete })
      assert.same({ "three" }, { h.messages[1].text })
    end)

    it("get direct messages sent while they were away, past the grace period", function()
      local a, b = keyed("alice", KEY_A), keyed("bob", KEY_B)
      fake:disconnect(b, 1001)
      fake:advance(60)
      fake:clear(a)
      fake:message(a, { type = "dm", to = "bob", text = "are you there?" })
      assert.equal("are you there?", fake:last(a, "dm").text)
      assert.matches("bob is offline", fake:last(a, "info").text)
      local b2 = keyed("bob", KEY_B)
      assert.equal("are you there?", fake:last(b2, "dm_history").messages[1].text)
    end)

    it("do not hand a conversation to another key that takes the name later", function()
      local a, b = keyed("alice", KEY_A), keyed("bob", KEY_B)
      fake:message(a, { type = "dm", to = "bob", text = "secret" })
      fake:disconnect(b, 1001)
      fake:advance(60)
      local m = keyed("bob", "mallory-key-01234567")
      assert.equal("bob", fake:last(m, "welcome").name)
      assert.same({}, fake:json(m, "dm_history"))
      fake:message(a, { type = "dm", to = "bob", text = "new" })
      assert.equal(a .. "-" .. m, fake:last(m, "dm").pair)
    end)

    it("keep their uid and conversations across a script reload", function()
      local a, b = keyed("alice", KEY_A), keyed("bob", KEY_B)
      fake:message(a, { type = "dm", to = "bob", text = "before" })
      assert.is_true(fake:reload())
      fake:message(a, { type = "dm", to = "bob", text = "after" })
      assert.equal(2, fake:last(b, "dm").id)
      fake:disconnect(b, 1001)
      fake:advance(60)
      local b2 = keyed("bob", KEY_B)
      assert.equal(2, #fake:last(b2, "dm_history").messages)
    end)
  end)

  describe("epoch change (Redis lost its data)", function()
    it("sends every member of every room its room's history again, with reset", function()
      local a, b = user("alice"), user("bob")
      fake:message(a, { type = "join", room = "dev" })
      say(a, "lobby", "one")
      fake:clear()
      fake:set_epoch(fake.epoch + 1000)
      local function by_room(id)
        local t = {}
        for _, h in ipairs(fake:json(id, "history")) do
          assert.is_nil(t[h.room])
          t[h.room] = h
        end
        return t
      end
      local ha, hb = by_room(a), by_room(b)
      for _, h in ipairs({ ha.lobby, ha.dev, hb.lobby }) do assert.is_true(h.reset) end
      assert.same({ "one" }, { ha.lobby.messages[1].text, ha.lobby.messages[2] })
      assert.same({ "one" }, { hb.lobby.messages[1].text, hb.lobby.messages[2] })
      assert.same({}, ha.dev.messages)
      assert.is_nil(hb.dev)
      assert.equal(fake.epoch, fake.confab.epoch)
    end)
  end)
end)
