-- The chat room of seed 002: a client's first message is its name; every later message goes to
-- everyone as "name: text".
--
--   build/confab --script scripts/examples/namefirst.lua --max-message 512

local confab = require "confab"

local ROOM = "all"

-- Like the Go hub, every connection hears every message, named yet or not.
confab.on("connect", function(ev)
  confab.join(ev.id, ROOM)
end)

confab.on("message", function(ev)
  -- bytes.TrimSpace(bytes.Replace(msg, newLine, space, -1))
  local text = ev.data:gsub("\n", " "):match("^%s*(.-)%s*$")
  local name = confab.get(ev.id, "name")   -- the Go client.frontName, kept by the core
  if not name then
    -- The first (non-empty) message is the name; it is not broadcast.
    if text ~= "" then confab.set(ev.id, "name", text) end
    return
  end
  confab.broadcast(ROOM, name .. ": " .. text)
end)
