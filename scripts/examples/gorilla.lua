-- The chat example of gorilla/websocket (seed 000), as a confab script.
--
-- In Go it is a Hub goroutine that keeps a set of clients and loops over them to broadcast, plus two
-- goroutines per client. In confab the core is the hub: every connection joins one room, and a
-- message is one broadcast to that room, the sender included, exactly as the Go hub sends it back.
--
--   build/confab --script scripts/examples/gorilla.lua --max-message 512

local confab = require "confab"

local ROOM = "all"

-- hub.register: a new client joins the set.
confab.on("connect", function(ev)
  confab.join(ev.id, ROOM)
end)

-- readPump: newlines become spaces, surrounding space is trimmed, then hub.broadcast to everyone.
confab.on("message", function(ev)
  local text = ev.data:gsub("\n", " "):match("^%s*(.-)%s*$")
  confab.broadcast(ROOM, text, nil, ev.binary)
end)

-- hub.unregister needs no code: the core takes a closed connection out of its rooms.
