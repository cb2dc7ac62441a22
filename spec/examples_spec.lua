-- Specs of the seed-article chats in scripts/examples/, driven through the confab_fake kit.
local confab_fake = require "confab_fake"

local fake

local function load(name)
  fake = confab_fake.new():load("scripts/examples/" .. name .. ".lua")
  return fake
end

after_each(function()
  if fake then assert.same({}, fake.errors) end
  fake = nil
end)

describe("examples/gorilla.lua", function()
  before_each(function() load("gorilla") end)

  it("sends every message to every client, the sender included", function()
    local a, b, c = fake:connect(), fake:connect(), fake:connect()
    fake:message(b, "hello")
    for _, id in ipairs{ a, b, c } do assert.same({ "hello" }, fake:sent(id)) end
  end)

  it("turns newlines into spaces and trims, like readPump", function()
    local a = fake:connect()
    fake:message(a, "  two\nlines \n")
    assert.same({ "two lines" }, fake:sent(a))
  end)

  it("forgets clients that left", function()
    local a, b = fake:connect(), fake:connect()
    fake:disconnect(b, 1001)
    fake:message(a, "anyone?")
    assert.equal(1, fake.broadcasts[1].recipients)
  end)

  it("passes binary frames on as binary", function()
    local a, b = fake:connect(), fake:connect()
    fake:message(a, "\1\2\255", true)
    assert.same({ { data = "\1\2\255", binary = true } }, fake:frames(b))
  end)
end)

describe("examples/namefirst.lua", function()
  before_each(function() load("namefirst") end)

  it("takes the first message as the name and broadcasts nothing for it", function()
    local a, b = fake:connect(), fake:connect()
    fake:message(a, " alice\n")
    assert.same({}, fake:sent(a))
    assert.same({}, fake:sent(b))
    assert.equal("alice", fake.confab.get(a, "name"))
  end)

  it("sends later messages to everyone as 'name: text'", function()
    local a, b = fake:connect(), fake:connect()
    fake:message(a, "alice")
    fake:message(a, "hi\nall")
    assert.same({ "alice: hi all" }, fake:sent(a))
    assert.same({ "alice: hi all" }, fake:sent(b))
  end)

  it("keeps asking for a name while the messages are empty", function()
    local a = fake:connect()
    fake:message(a, "   ")
    fake:message(a, "bob")
    fake:message(a, "yo")
    assert.same({ "bob: yo" }, fake:sent(a))
  end)
end)

describe("examples/jsonlogin.lua", function()
  before_each(function() load("jsonlogin") end)

  local function login(name)
    local id = fake:connect{ remote = "10.0.0." .. (#fake.confab.connections() + 1) .. ":5000" }
    fake:message(id, { type = "login", content = name })
    return id
  end

  it("greets a new connection with a handshake carrying its address", function()
    local a = fake:connect{ remote = "10.1.2.3:4567" }
    assert.same({ { ip = "10.1.2.3:4567", user = "", from = "", type = "handshake", content = "",
                    user_list = {} } }, fake:json(a))
    assert.matches('"user_list":%[%]', fake:sent(a)[1])
  end)

  it("broadcasts a login with the user list", function()
    local a = login("alice")
    local b = login("bob")
    local got = fake:last(a, "login")
    assert.same({ "bob", "bob", "bob", { "alice", "bob" } }, { got.content, got.user, got.from, got.user_list })
    assert.same(got, fake:last(b, "login"))
  end)

  it("sends chat lines to every logged-in user with from", function()
    local a, b = login("alice"), login("bob")
    local idle = fake:connect()
    fake:message(a, { type = "user", content = "你好" })
    local got = fake:last(b, "user")
    assert.same({ "alice", "你好", "alice" }, { got.from, got.content, got.user })
    assert.same(got, fake:last(a, "user"))
    assert.is_nil(fake:last(idle, "user"))
  end)

  it("broadcasts a logout with the updated list, on request or on disconnect", function()
    local a, b, c = login("alice"), login("bob"), login("carol")
    fake:message(a, { type = "logout" })
    local got = fake:last(b, "logout")
    assert.same({ "alice", { "bob", "carol" } }, { got.content, got.user_list })
    assert.same(got, fake:last(a, "logout"))
    fake:disconnect(c, 1001)
    got = fake:last(b, "logout")
    assert.same({ "carol", { "bob" } }, { got.content, got.user_list })
    assert.equal(1, #fake:json(a, "logout"))
  end)

  it("answers bad frames with a system message", function()
    local a = fake:connect()
    fake:message(a, "not json")
    assert.equal("system", fake:last(a).type)
    fake:message(a, { type = "user", content = "before login" })
    assert.equal("system", fake:last(a).type)
    assert.same({}, fake.broadcasts)
  end)
end)

describe("examples/add.lua", function()
  before_each(function() load("add") end)

  local function ask(req)
    local a = fake:connect{ path = "/add" }
    fake:message(a, req)
    return fake:last(a)
  end

  it("adds A and B", function()
    assert.same({ Sum = 12 }, ask('{"A":3,"B":9}'))
    assert.same({ Sum = -5 }, ask('{"A":-8,"B":3}'))
    assert.same({ Sum = 7 }, ask('{"a":3,"b":4}'))
    assert.same({ Sum = 3 }, ask('{"A":3}'))
  end)

  it("prints large sums exactly", function()
    local a = fake:connect()
    fake:message(a, '{"A":4000000000000000,"B":123}')
    assert.same({ '{"Sum":4000000000000123}' }, fake:sent(a))
  end)

  it("answers bad input with an error and stays open", function()
    for _, bad in ipairs{ "x", "[3,9]", '{"A":"3","B":9}', '{"A":1.5,"B":1}', '{"A":1e300,"B":1}',
                          '{"A":true}' } do
      local got = ask(bad)
      assert.is_string(got.error, bad)
      assert.is_nil(got.Sum)
    end
  end)
end)

describe("examples/pathrooms.lua", function()
  before_each(function() load("pathrooms") end)

  it("puts a connection in the room named by its path", function()
    local r1, r2, b = fake:connect{ path = "/ws/red" }, fake:connect{ path = "/ws/red" },
      fake:connect{ path = "/ws/blue" }
    fake:message(r1, "in red")
    assert.same({ "in red" }, fake:sent(r1))
    assert.same({ "in red" }, fake:sent(r2))
    assert.same({}, fake:sent(b))
    assert.same({ red = 2, blue = 1 }, fake.confab.rooms())
  end)

  it("uses lobby for /ws", function()
    local a = fake:connect{ path = "/ws" }
    assert.same({ "lobby" }, fake.confab.rooms_of(a))
  end)

  it("decodes the percent-encoded path: /ws/%E7%BA%A2%E8%89%B2 is the room 红色", function()
    local a = fake:connect{ path = "/ws/%E7%BA%A2%E8%89%B2" }
    local b = fake:connect{ path = "/ws/" .. "红色" }       -- a client that did not encode
    local c = fake:connect{ path = "/ws/caf%C3%A9" }
    assert.same({ "红色" }, fake.confab.rooms_of(a))
    fake:message(b, "你好")
    assert.same({ "你好" }, fake:sent(a))
    assert.same({ "café" }, fake.confab.rooms_of(c))
  end)

  it("refuses other paths", function()
    for _, path in ipairs{ "/other", "/ws/a/b", "/ws/bad%20name", "/ws/" .. string.rep("x", 65),
                           "/ws/%E7%BA", "/ws/%zz", "/ws/a%2Fb", "/ws/%E2%80%AEevil", "/ws/%00",
                           "/ws/%C2%A0" } do
      local id, reason = fake:connect{ path = path }
      assert.is_nil(id, path)
      assert.matches("no such room", reason)
    end
  end)
end)
