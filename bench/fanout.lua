-- bench/fanout.lua: the smallest script that speaks enough of the protocol in README.md for the fan-out
-- benchmark. `hello` → `welcome` and join `lobby`; `say` → one cjson.encode of a `message`
-- (id, ts, from, text, kind like scripts/chat.lua) and one confab.broadcast to the room,
-- sender included. No validation, flood control, history or presence broadcasts: what it
-- measures is the C core's fan-out, not the chat logic.
local confab = require "confab"
local cjson = require "cjson"

local last_id = {}      -- room -> last message id

confab.on("message", function(ev)
  local ok, m = pcall(cjson.decode, ev.data)
  if not ok or type(m) ~= "table" then return end
  if m.type == "hello" and type(m.name) == "string" then
    confab.set(ev.id, "name", m.name)
    confab.send(ev.id, cjson.encode({ type = "welcome", name = m.name, epoch = confab.epoch }))
    confab.join(ev.id, "lobby")
  elseif m.type == "say" and type(m.room) == "string" and type(m.text) == "string" then
    local name = confab.get(ev.id, "name")
    if not name then return end
    local id = (last_id[m.room] or 0) + 1
    last_id[m.room] = id
    confab.broadcast(m.room, cjson.encode({
      type = "message", room = m.room, id = id, ts = confab.now(),
      from = name, text = m.text, kind = "say",
    }))
  end
end)
