-- Rooms chosen by the URL path (seed 004): ws://HOST/ws/ROOM puts the connection in room ROOM and
-- its messages go to that room only (the sender included, like the seed's Room.Run loop).
-- ws://HOST/ws is the room "lobby"; any other path is refused with 403. The path reaches the script
-- as the browser sent it, percent-encoded (/ws/%E7%BA%A2 for /ws/红): confab.urldecode decodes it.
--
--   build/confab --script scripts/examples/pathrooms.lua     (needs the core to accept /ws/...)
--
-- Its page, pathrooms.web/, is served at / when this script runs.
--
-- The seed also fans rooms out over several servers with Redis pub/sub; one confab process is one
-- server, so that part has no equivalent here.

local confab = require "confab"

local MAX_BYTES = 64   -- the core's limit on a room name

-- Characters above ASCII that would make a name invisible, blank or reordered on screen:
-- C1 controls, no-break and wide spaces, zero-width and bidi controls, BOM.
local function invisible(c)
  return c < 0xA1 or c == 0x3000 or (c >= 0x2000 and c <= 0x200F) or
         (c >= 0x2028 and c <= 0x202F) or (c >= 0x2060 and c <= 0x206F) or c == 0xFEFF
end

-- A room name: ASCII letters, digits, "_" and "-", and any visible non-ASCII character
-- (红色, café), 1 to MAX_BYTES bytes of valid UTF-8.
local function valid_room(name)
  if #name == 0 or #name > MAX_BYTES or not utf8.len(name) then return false end
  for _, c in utf8.codes(name) do
    if c < 0x80 then
      if not string.char(c):match("[%w_%-]") then return false end
    elseif invisible(c) then
      return false
    end
  end
  return true
end

local function room_of(path)
  if path == "/ws" or path == "/ws/" then return "lobby" end
  local raw = path:match("^/ws/([^/]+)/?$")
  local room = raw and confab.urldecode(raw)
  if room and valid_room(room) then return room end
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
