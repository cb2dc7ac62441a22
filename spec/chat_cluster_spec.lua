-- Specs of scripts/chat.lua on several nodes (confab --redis), driven through the testing kit's
-- cluster (confab_fake.cluster): the same script on every node, clients on different nodes.
local confab_fake = require "confab_fake"

local SCRIPT = "scripts/chat.lua"
local KEY_A = "aaaaaaaaaaaaaaaaaaaa"
local KEY_B = "bbbbbbbbbbbbbbbbbbbb"
local cl

-- Connects to node i and says hello; returns the id.
local function user(i, name, extra)
  local id = assert(cl.nodes[i]:connect())
  local hello = { type = "hello", name = name }
  for k, v in pairs(extra or {}) do hello[k] = v end
  cl:message(id, hello)
  return id
end

local function errors_of(id)
  local list = {}
  for _, e in ipairs(cl:json(id, "error")) do list[#list + 1] = e.code end
  return list
end

local function sorted(list)
  list = { table.unpack(list) }
  table.sort(list)
  return list
end

after_each(function()
  for _, node in ipairs(cl.nodes) do assert.same({}, node.errors) end
end)

describe("chat.lua on a cluster", function()
  before_each(function() cl = confab_fake.cluster{ nodes = 3 }:load(SCRIPT) end)

  it("gives connection ids that carry the node", function()
    local a, b = user(1, "alice"), user(2, "bob")
    assert.equal(1, a >> 32)
    assert.equal(2, b >> 32)
    assert.equal(a, cl:last(a, "welcome").uid)
  end)

  it("lists and counts the members of every node, and tells every node of joins", function()
    local a = user(1, "alice")
    local b = user(2, "bob")
    local c = user(3, "carol")
    assert.same({ "alice", "bob", "carol" }, sorted(cl:last(c, "members").members))
    assert.same({ type = "joined", room = "lobby", name = "carol" }, cl:last(a, "joined"))
    cl:clear()
    cl:message(a, { type = "rooms" })
    assert.same({ { name = "lobby", members = 3 } }, cl:last(a, "rooms").rooms)
    cl:message(b, { type = "say", room = "lobby", text = "/who" })
    assert.matches("^lobby %(3%)", cl:last(b, "info").text)
  end)

  it("keeps names unique across nodes", function()
    user(1, "alice")
    local x = user(2, "Alice")
    assert.same({ "name_taken" }, errors_of(x))
    local y = user(3, "a1ice")   -- a look-alike of a name held on another node
    assert.same({ "name_confusable" }, errors_of(y))
    local b = user(2, "bob")
    cl:clear()
    cl:message(b, { type = "nick", name = "ALICE" })
    assert.same({ "name_taken" }, errors_of(b))
  end)

  it("frees a name on another node when its holder leaves or renames", function()
    local a = user(1, "alice")
    cl:message(a, { type = "nick", name = "alex" })
    local x = user(2, "alice")
    assert.same({}, errors_of(x))
    cl:disconnect(x, 1000)
    local y = user(3, "alice")
    assert.same({}, errors_of(y))
  end)

  it("delivers direct messages to a user on another node, with the cid's answer to the sender", function()
    local a, b = user(1, "alice"), user(3, "bob")
    cl:clear()
    cl:message(a, { type = "dm", to = "bob", text = "hi", cid = "c1" })
    local got = cl:last(b, "dm")
    assert.equal("hi", got.text)
    assert.equal("alice", got.from)
    assert.equal("c1", cl:last(a, "dm").cid)
  end)

  it("lets a keyed user replace its connection on another node, quietly", function()
    local a = user(1, "alice", { key = KEY_A })
    local b = user(2, "bob")
    cl:clear()
    local a2 = user(3, "alice", { key = KEY_A })
    assert.equal(a, cl:last(a2, "welcome").uid)   -- the uid is the key's, on every node
    assert.same({ 4000, "replaced by a newer connection" }, { cl:closed(a) })
    assert.is_false(cl:connected(a))
    assert.same({}, cl:json(b, "left"))
    cl:message(b, { type = "who", room = "lobby" })
    assert.same({ "alice", "bob" }, sorted(cl:last(b, "members").members))
  end)

  it("answers a hello's cid after its claims, once", function()
    local id = assert(cl.nodes[2]:connect())
    cl:message(id, { type = "hello", name = "dora", cid = "h1" })
    local oks = cl:json(id, "ok")
    assert.same({ { type = "ok", cid = "h1" } }, oks)
    local types = {}
    for _, m in ipairs(cl:json(id)) do types[#types + 1] = m.type end
    assert.equal("welcome", types[1])
    assert.equal("ok", types[#types])
  end)

  it("makes a dead node's members leave everywhere, once, and frees their names", function()
    local a = user(1, "alice")
    local b = user(2, "bob")
    local c = user(2, "carol", { key = KEY_B })
    cl:message(a, { type = "join", room = "dev" })
    cl:message(b, { type = "join", room = "dev" })
    cl:clear()
    cl:kill(2)
    local left = {}
    for _, m in ipairs(cl:json(a, "left")) do left[#left + 1] = m.name .. "@" .. m.room end
    assert.same({ "bob@dev", "bob@lobby" }, sorted(left))   -- carol is keyed: in her grace
    cl:advance(10)
    left = {}
    for _, m in ipairs(cl:json(a, "left")) do left[#left + 1] = m.name .. "@" .. m.room end
    assert.same({ "bob@dev", "bob@lobby", "carol@lobby" }, sorted(left))
    assert.same({ "alice" }, cl:last(a, "members").members)
    local x = user(3, "bob")
    assert.same({}, errors_of(x))
    local y = user(3, "carol")
    assert.same({}, errors_of(y))
  end)

  it("lets a keyed user of a dead node come back on another within the grace, quietly", function()
    local a = user(1, "alice")
    local c = user(2, "carol", { key = KEY_B })
    cl:clear()
    cl:kill(2)
    local c2 = user(1, "carol", { key = KEY_B })
    assert.equal(c, cl:last(c2, "welcome").uid)
    cl:advance(10)
    assert.same({}, cl:json(a, "left"))
    assert.same({}, cl:json(a, "joined"))
    cl:message(a, { type = "who", room = "lobby" })
    assert.same({ "alice", "carol" }, sorted(cl:last(a, "members").members))
  end)

  it("lets a keyed user that dropped off one node come back on another within the grace: "
     .. "no left, one joined (the grace list is the first node's)", function()
    local a = user(1, "alice")
    local c = user(2, "carol", { key = KEY_B })
    cl:clear()
    cl:disconnect(c, 1006)
    local c2 = user(3, "carol", { key = KEY_B })
    assert.equal(c, cl:last(c2, "welcome").uid)
    cl:advance(10)
    assert.same({}, cl:json(a, "left"))
    assert.same(1, #cl:json(a, "joined"))
    cl:message(a, { type = "who", room = "lobby" })
    assert.same({ "alice", "carol" }, sorted(cl:last(a, "members").members))
    local x = user(1, "carol", { key = KEY_A })   -- still claimed, by its owner on node 3
    assert.same({ "name_taken" }, errors_of(x))
  end)

  it("tells the rooms at once that a keyed user of a restarting node left (its grace would end "
     .. "with the node); the user comes back on another with one joined", function()
    local a = user(1, "alice")
    local c = user(2, "carol", { key = KEY_B })
    cl:clear()
    cl:disconnect(c, 1012)   -- the drain of a node that stops
    assert.same({ "carol" }, (function()
      local l = {}
      for _, m in ipairs(cl:json(a, "left")) do l[#l + 1] = m.name end
      return l
    end)())
    local c2 = user(3, "carol", { key = KEY_B })
    assert.equal(c, cl:last(c2, "welcome").uid)
    cl:advance(10)
    assert.same(1, #cl:json(a, "left"))
    assert.same(1, #cl:json(a, "joined"))
    cl:message(a, { type = "who", room = "lobby" })
    assert.same({ "alice", "carol" }, sorted(cl:last(a, "members").members))
  end)

  it("sends a node's member list again when another node's change follows one it sent within "
     .. "10 s (it may have been computed before the change reached it), not later", function()
    local a = user(1, "alice")
    user(2, "bob")
    cl:clear()
    user(3, "carol")
    -- node 3 lists the room for carol's join; nodes 1 and 2 listed it a moment ago: again
    local lists = cl:json(a, "members")
    assert.same(3, #lists)
    for _, l in ipairs(lists) do assert.same({ "alice", "bob", "carol" }, sorted(l.members)) end
    cl:advance(11)
    cl:clear()
    user(3, "dave")
    assert.same(1, #cl:json(a, "members"))
    assert.same({ "alice", "bob", "carol", "dave" }, sorted(cl:last(a, "members").members))
  end)

  it("tells each member once that the history was reset when Redis lost its data", function()
    local a, b = user(1, "alice"), user(2, "bob")
    cl:message(a, { type = "join", room = "dev" })
    cl:clear()
    cl:set_epoch(cl.nodes[1].epoch + 1000)
    for _, id in ipairs{ a, b } do
      local resets = {}
      for _, h in ipairs(cl:json(id, "history")) do
        if h.reset then resets[#resets + 1] = h.room end
      end
      table.sort(resets)
      assert.same(id == a and { "dev", "lobby" } or { "lobby" }, resets)
    end
  end)

  it("keeps a conversation across nodes: history on hello wherever the user comes back", function()
    local a = user(1, "alice", { key = KEY_A })
    local b = user(2, "bob", { key = KEY_B })
    cl:message(a, { type = "dm", to = "bob", text = "one" })
    cl:message(b, { type = "dm", to = "alice", text = "two" })
    cl:disconnect(b, 1001)
    cl:advance(10)
    cl:message(a, { type = "dm", to = "bob", text = "three" })   -- bob is away
    local b2 = user(3, "bob", { key = KEY_B })
    local h = cl:last(b2, "dm_history")
    assert.equal("alice", h.with)
    local texts = {}
    for _, m in ipairs(h.messages) do texts[#texts + 1] = m.text end
    assert.same({ "one", "two", "three" }, texts)
    cl:message(b2, { type = "say", room = "lobby", text = "back" })
    assert.equal("back", cl:last(a, "message").text)
  end)

  it("posts room messages with one id sequence for every node", function()
    local a, b = user(1, "alice"), user(2, "bob")
    cl:message(a, { type = "say", room = "lobby", text = "x" })
    cl:message(b, { type = "say", room = "lobby", text = "y" })
    local ids = {}
    for _, m in ipairs(cl:json(a, "message")) do ids[#ids + 1] = m.id end
    assert.same({ 1, 2 }, ids)
    assert.same(ids[2], cl:last(b, "message").id)
  end)
end)
