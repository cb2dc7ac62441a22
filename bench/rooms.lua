-- bench/rooms.lua: the minimal room protocol of the rooms, idle-room and accept benchmarks
-- (bench/ws_reference.mjs speaks the same for Node's ws, so the two servers do the same work).
--   {"type":"hello","room":R}          → join R (default "lobby"), answer {"type":"welcome","room":R}
--   {"type":"say","room":R,"text":T}   → to every member of R, the sender included:
--                                        {"type":"message","room":R,"id":N,"from":ID,"text":T}
-- No names, attributes, validation, flood control or history: it measures the core's connection
-- and room costs, not the chat logic of scripts/chat.lua. It defines no connect hook.
local confab = require "confab"
local cjson = require "cjson"

local last_id = {}      -- room -> last message id

confab.on("message", function(ev)
  local ok, m = pcall(cjson.decode, ev.data)
  if not ok or type(m) ~= "table" then return end
  if m.type == "hello" then
    local room = type(m.room) == "string" and m.room or "lobby"
    confab.join(ev.id, room)
    confab.send(ev.id, cjson.encode({ type = "welcome", room = room }))
  elseif m.type == "say" and type(m.room) == "string" and type(m.text) == "string" then
    local id = (last_id[m.room] or 0) + 1
    last_id[m.room] = id
    confab.broadcast(m.room, cjson.encode({
      type = "message", room = m.room, id = id, from = ev.id, text = m.text,
    }))
  end
end)
