-- The example of the README's "testing your script" section, kept here so that it runs.
local confab_fake = require "confab_fake"

describe("my chat script", function()
  local fake

  before_each(function()
    -- A fake core (history of 50 per room) running the script; the clock is manual.
    fake = confab_fake.new{ history = 50 }:load("scripts/chat.lua")
  end)

  after_each(function()
    assert.same({}, fake.errors)   -- no hook raised an error
  end)

  it("delivers a message to the room, with an id and the server time", function()
    local alice = fake:connect{ path = "/ws" }            -- runs the connect hooks
    local bob = fake:connect()
    fake:message(alice, '{"type":"hello","name":"alice"}') -- a JSON string...
    fake:message(bob, { type = "hello", name = "bob" })    -- ...or a table, encoded for you
    fake:clear()                                           -- forget what was sent so far

    fake:advance(1.5)                                      -- 1.5 s later (timers fire too)
    fake:message(alice, { type = "say", room = "lobby", text = "hi" })

    local m = fake:last(bob, "message")                    -- the last decoded "message" to bob
    assert.same({ type = "message", room = "lobby", id = 1, ts = fake:now(),
                  from = "alice", text = "hi", kind = "say" }, m)
    assert.equal(1, #fake.posts)                           -- one post, not a loop of sends
  end)

  it("keeps names across a reload and frees them on disconnect", function()
    local alice = fake:connect()
    fake:message(alice, { type = "hello", name = "alice" })
    assert.is_true(fake:reload())                          -- like SIGHUP: state stays in the core
    local other = fake:connect()
    fake:message(other, { type = "hello", name = "ALICE" })
    assert.equal("name_taken", fake:last(other, "error").code)
    fake:disconnect(alice, 1000)                           -- leave per room, then disconnect
    fake:message(other, { type = "hello", name = "ALICE" })
    assert.equal("ALICE", fake:last(other, "welcome").name)
  end)
end)
