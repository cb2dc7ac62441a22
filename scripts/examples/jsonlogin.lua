-- The JSON chat of seed 001. Every frame is the seed's Data struct:
--   {"ip":..., "user":..., "from":..., "type":..., "content":..., "user_list":[...]}
-- On connect the server sends type "handshake"; the page answers {"type":"login","content":NAME};
-- {"type":"user","content":TEXT} is a chat line; {"type":"logout"} or closing the page logs out.
-- login and logout go to everyone with the new user_list.
--
--   build/confab --script scripts/examples/jsonlogin.lua

local confab = require "confab"
local cjson = require "cjson"

local ROOM = "chat"   -- the logged-in users, in login order

-- The names in the room, oldest login first: the seed's user_list, kept by the core.
local function user_list()
  local names = {}
  for _, id in ipairs(confab.members(ROOM)) do names[#names + 1] = confab.get(id, "user") end
  return names
end

-- One Data frame. lua-cjson 2.1 writes an empty table as {}, so an empty list is spliced in.
local function data(id, kind, content, from)
  local info = confab.info(id)
  local t = { ip = info and info.remote or "", user = confab.get(id, "user") or "",
              from = from or "", type = kind, content = content or "" }
  local list = user_list()
  if #list > 0 then
    t.user_list = list
    return cjson.encode(t)
  end
  return cjson.encode(t):sub(1, -2) .. ',"user_list":[]}'
end

local function logout(id)
  local user = confab.get(id, "user")
  if not user then return end
  confab.leave(id, ROOM)
  local frame = data(id, "logout", user, user)
  confab.set(id, "user", nil)
  confab.broadcast(ROOM, frame)
  return frame
end

confab.on("connect", function(ev)
  confab.send(ev.id, data(ev.id, "handshake"))
end)

confab.on("message", function(ev)
  local ok, msg = pcall(cjson.decode, ev.data)
  if not ok or type(msg) ~= "table" or type(msg.type) ~= "string" then
    return confab.send(ev.id, data(ev.id, "system", "bad message: expected JSON with a type"))
  end
  local user = confab.get(ev.id, "user")
  if msg.type == "login" then
    if user then return end
    if type(msg.content) ~= "string" or msg.content == "" then
      return confab.send(ev.id, data(ev.id, "system", "login needs a name in content"))
    end
    confab.set(ev.id, "user", msg.content)
    confab.join(ev.id, ROOM)
    confab.broadcast(ROOM, data(ev.id, "login", msg.content, msg.content))
  elseif msg.type == "user" then
    if not user then
      return confab.send(ev.id, data(ev.id, "system", "login first"))
    end
    if type(msg.content) ~= "string" then
      return confab.send(ev.id, data(ev.id, "system", "content must be a string"))
    end
    confab.broadcast(ROOM, data(ev.id, "user", msg.content, user))
  elseif msg.type == "logout" then
    local frame = logout(ev.id)
    if frame then confab.send(ev.id, frame) end   -- the seed's broadcast reached the leaver too
  end
  -- Like the seed, other types are ignored.
end)

-- Closing the page logs out (the seed's deferred logout). The core has already taken the
-- connection out of the room, so the user_list sent is the one without it.
confab.on("disconnect", function(ev)
  local user = confab.get(ev.id, "user")
  if user then confab.broadcast(ROOM, data(ev.id, "logout", user, user)) end
end)
