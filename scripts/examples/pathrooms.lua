-- Rooms chosen by the URL path (seed 004): ws://HOST/ws/ROOM puts the connection in room ROOM and
-- its messages go to that room only (the sender included, like the seed's Room.Run loop).
-- ws://HOST/ws is the room "lobby"; any other path is refused with 403.
--
--   build/confab --script scripts/examples/pathrooms.lua     (needs the core to accept /ws/...)
--
-- The seed also fans rooms out over several servers with Redis pub/sub; one confab process is one
-- server, so that part has no equivalent here.

local confab = require "confab"

local function room_of(path)
  if path == "/ws" or path == "/ws/" then return "lobby" end
  local room = path:match("^/ws/([%w_%-]+)/?$")
  if room and #room <= 64 then return room end
  return nil
end

confab.on("connect", function(ev)
  local room = room_of(ev.path)
  if not room then return false, "no such room: " .. ev.path end
  confab.set(ev.id, "room", room)
  confab.join(ev.id, room)
end)

confab.on("message", function(ev)
  local room = confab.get(ev.id, "room")
  if room then confab.broadcast(room, ev.data, nil, ev.binary) end
end)
