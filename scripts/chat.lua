-- The default chat of confab: implements the protocol in README.md on top of the hooks of docs/hooks.md.
--
-- What must survive a reload lives in the core: a user's name is the connection attribute "name",
-- message ids and history are the room history rings. The tables below are caches and rate-limit
-- state that the `reload` hook rebuilds (or that may simply start afresh).
--
-- Cost model: a connection that sends nothing has no Lua state at all, and joins nothing before its
-- hello. A room message is one cjson.encode and one confab.broadcast (the core encodes the frame
-- once for every member).

local confab = require "confab"
local cjson = require "cjson"

local NAME_MAX = 24          -- characters
local ROOM_MAX = 32          -- characters
local ROOM_MAX_BYTES = 64    -- the core's limit on a room name
local TEXT_MAX = 2000        -- characters
local ROOMS_PER_USER = 32
local LOBBY = "lobby"
local FLOOD_RATE = 5         -- messages per second, per connection...
local FLOOD_BURST = 10       -- ...with bursts of this many
local TYPING_EVERY = 2000    -- ms between two typing notices of one user in one room
-- Full member lists go to a whole room at most MEMBERS_BURST times in a row, then once per
-- (1 + members/250) seconds: without this a crowd joining a room costs members^2 bytes.
-- joined/left/renamed always go out at once, so a client can keep its list exact from those.
local MEMBERS_BURST = 5

local HELP = "commands: /join ROOM, /leave [ROOM], /nick NAME, /msg NAME TEXT, /me TEXT, /who, "
  .. "/rooms, /help"

local names = {}     -- id -> name (a cache of the "name" attributes)
local by_key = {}    -- folded name -> connection id (names are unique case-insensitively)
local member = {}    -- id -> { [room] = true } (mirror of the core's rooms_of, for fast checks)
local flood = {}     -- id -> { tokens =, at = } (created on a connection's first message)
local typing = {}    -- id -> { [room] = ms of the last typing notice sent }
local roster = {}    -- room -> { tokens =, at =, timer = } for members broadcasts

---------------------------------------------------------------------------------------------------
-- Names: letters (Unicode letters allowed), digits, "_" and "-".

-- Code point ranges counted as letters. An approximation of Unicode's L* categories for the
-- scripts people write names in; symbols, punctuation, spaces, format characters and emoji are out.
local LETTERS = {
  { 0x00AA, 0x00AA }, { 0x00B5, 0x00B5 }, { 0x00BA, 0x00BA },
  { 0x00C0, 0x00D6 }, { 0x00D8, 0x00F6 }, { 0x00F8, 0x02AF },          -- Latin, IPA
  { 0x0370, 0x0373 }, { 0x0376, 0x0377 }, { 0x037B, 0x037D }, { 0x037F, 0x037F },
  { 0x0386, 0x0386 }, { 0x0388, 0x03F5 }, { 0x03F7, 0x0481 }, { 0x048A, 0x052F }, -- Greek, Cyrillic
  { 0x0531, 0x0556 }, { 0x0561, 0x0587 }, { 0x05D0, 0x05EA },          -- Armenian, Hebrew
  { 0x0620, 0x064A }, { 0x066E, 0x06D3 }, { 0x06FA, 0x06FC },          -- Arabic
  { 0x0900, 0x0963 }, { 0x0966, 0x0DFF },                              -- Indic scripts
  { 0x0E01, 0x0E3A }, { 0x0E40, 0x0E4E }, { 0x0E81, 0x0EDF },          -- Thai, Lao
  { 0x10A0, 0x10FF }, { 0x1100, 0x11FF }, { 0x1E00, 0x1FBC },          -- Georgian, Jamo, Latin/Greek ext.
  { 0x1FC2, 0x1FCC }, { 0x1FD0, 0x1FDB }, { 0x1FE0, 0x1FEC }, { 0x1FF2, 0x1FFC },
  { 0x3041, 0x3096 }, { 0x309D, 0x309F }, { 0x30A1, 0x30FA }, { 0x30FC, 0x30FF }, -- kana
  { 0x3105, 0x312F }, { 0x3131, 0x318E }, { 0x3400, 0x4DBF }, { 0x4E00, 0x9FFF }, -- CJK
  { 0xA000, 0xA48C }, { 0xAC00, 0xD7A3 }, { 0xF900, 0xFAFF },          -- Yi, Hangul, CJK compat.
  { 0xFF10, 0xFF19 }, { 0xFF21, 0xFF3A }, { 0xFF41, 0xFF5A }, { 0xFF66, 0xFF9F }, -- fullwidth
  { 0x20000, 0x3134F },                                                 -- CJK extensions
}

local function is_word_char(cp)
  if cp < 0x80 then
    return (cp >= 48 and cp <= 57) or (cp >= 65 and cp <= 90) or (cp >= 97 and cp <= 122)
      or cp == 95 or cp == 45
  end
  for _, r in ipairs(LETTERS) do
    if cp < r[1] then return false end
    if cp <= r[2] then return true end
  end
  return false
end

-- "name" or "room" is `kind`; returns the string or nil, error code, message.
local function check_word(s, kind, max_chars)
  local code = kind == "room" and "bad_room" or "bad_name"
  if type(s) ~= "string" then return nil, "bad_field", kind .. " must be a string" end
  local n = utf8.len(s)
  if not n or n == 0 or n > max_chars or (kind == "room" and #s > ROOM_MAX_BYTES) then
    return nil, code, string.format("a %s is 1-%d letters, digits, _ or -", kind, max_chars)
  end
  for _, cp in utf8.codes(s) do
    if not is_word_char(cp) then
      return nil, code, string.format("a %s is 1-%d letters, digits, _ or -", kind, max_chars)
    end
  end
  return s
end

-- Simple case folding for the scripts where case exists (Latin, Greek, Cyrillic, Armenian) and
-- fullwidth Latin folded to ASCII, so "Alice", "ALICE" and "ａｌｉｃｅ" are one name.
local function fold_cp(c)
  if c < 0x80 then
    return (c >= 65 and c <= 90) and c + 32 or c
  elseif c >= 0xFF21 and c <= 0xFF3A then return c - 0xFF21 + 97
  elseif c >= 0xFF41 and c <= 0xFF5A then return c - 0xFF41 + 97
  elseif c >= 0xFF10 and c <= 0xFF19 then return c - 0xFF10 + 48
  elseif c >= 0xC0 and c <= 0xDE and c ~= 0xD7 then return c + 32
  elseif c == 0x178 then return 0xFF
  elseif c == 0x130 then return 0x69
  elseif (c >= 0x100 and c <= 0x12F) or (c >= 0x132 and c <= 0x137) or (c >= 0x14A and c <= 0x177)
      or (c >= 0x460 and c <= 0x481) or (c >= 0x48A and c <= 0x4BF) or (c >= 0x4D0 and c <= 0x52F)
      or (c >= 0x1E00 and c <= 0x1E95) or (c >= 0x1EA0 and c <= 0x1EFF) then
    return c % 2 == 0 and c + 1 or c
  elseif (c >= 0x139 and c <= 0x148) or (c >= 0x179 and c <= 0x17E) or (c >= 0x4C1 and c <= 0x4CE) then
    return c % 2 == 1 and c + 1 or c
  elseif c >= 0x391 and c <= 0x3AB and c ~= 0x3A2 then return c + 32
  elseif c == 0x3C2 then return 0x3C3
  elseif c == 0x386 then return 0x3AC
  elseif c >= 0x388 and c <= 0x38A then return c + 37
  elseif c == 0x38C then return 0x3CC
  elseif c == 0x38E or c == 0x38F then return c + 63
  elseif c >= 0x400 and c <= 0x40F then return c + 80
  elseif c >= 0x410 and c <= 0x42F then return c + 32
  elseif c == 0x4C0 then return 0x4CF
  elseif c >= 0x531 and c <= 0x556 then return c + 48
  end
  return c
end

local function fold(name)
  local out = {}
  for _, cp in utf8.codes(name) do out[#out + 1] = utf8.char(fold_cp(cp)) end
  return table.concat(out)
end

-- Message text: 1-2000 characters, no control characters but newline and tab.
local function check_text(s)
  if type(s) ~= "string" then return nil, "bad_field", "text must be a string" end
  local n = utf8.len(s)
  if not n then return nil, "bad_text", "text is not valid UTF-8" end
  if n == 0 then return nil, "bad_text", "text is empty" end
  if n > TEXT_MAX then return nil, "too_long", "text is longer than " .. TEXT_MAX .. " characters" end
  if s:find("[\0-\8\11-\31\127]") or s:find("\194[\128-\159]") then
    return nil, "bad_text", "text contains control characters"
  end
  return s
end

---------------------------------------------------------------------------------------------------
-- Frames. lua-cjson 2.1 (Debian) encodes an empty Lua table as {}, so arrays that may be empty are
-- spliced in as text.

local function with_array(t, key, array)
  if #array > 0 then
    t[key] = array
    return cjson.encode(t)
  end
  return cjson.encode(t):sub(1, -2) .. ',"' .. key .. '":[]}'
end

local function send_error(id, code, message)
  confab.send(id, cjson.encode{ type = "error", code = code, message = message })
end

local function send_info(id, text)
  confab.send(id, cjson.encode{ type = "info", text = text })
end

local function name_of(id)
  return names[id]
end

local function member_names(room)
  local list = {}
  for _, id in ipairs(confab.members(room)) do
    list[#list + 1] = names[id]
  end
  return list
end

local function members_frame(room)
  return with_array({ type = "members", room = room }, "members", member_names(room))
end

-- The room's membership or a member's name changed: every member gets the new list, at once while
-- the room's burst allows, else in one coalesced broadcast a little later. `joiner` (if any) needs
-- its list now either way.
local function members_changed(room, joiner)
  local r = roster[room]
  local now = confab.now()
  if not r then
    r = { tokens = MEMBERS_BURST, at = now }
    roster[room] = r
  end
  if not r.timer then
    local every = 1000 * (1 + #confab.members(room) // 250)
    r.tokens = math.min(MEMBERS_BURST, r.tokens + math.max(0, now - r.at) / every)
    r.at = now
    if r.tokens >= 1 then
      r.tokens = r.tokens - 1
      confab.broadcast(room, members_frame(room))
      return
    end
    r.timer = confab.after((1 - r.tokens) * every / 1000, function()
      r.timer = nil
      r.tokens, r.at = 0, confab.now()
      if #confab.members(room) > 0 then
        confab.broadcast(room, members_frame(room))
      else
        roster[room] = nil
      end
    end)
  end
  if joiner then confab.send(joiner, members_frame(room)) end
end

---------------------------------------------------------------------------------------------------
-- Rooms and history.

-- Sends the `history` of a room. `after` is the last id the client has (resume), or nil for a
-- plain join, or false when the client's ids are from another server run.
local function send_history(id, room, after)
  local list, complete, reset
  if after == nil then
    list, complete = confab.history(room)
    reset = true
  elseif after and after <= confab.history_last(room) then
    list, complete = confab.history(room, after)
    reset = false
    if not complete then list = confab.history(room) reset = true end
  else
    list = confab.history(room)
    complete, reset = false, true
  end
  local head = cjson.encode{ type = "history", room = room, complete = complete, reset = reset }
  confab.send(id, head:sub(1, -2) .. ',"messages":[' .. table.concat(list, ",") .. "]}")
end

local function room_count(id)
  local n = 0
  for _ in pairs(member[id] or {}) do n = n + 1 end
  return n
end

-- Joins a room (the join hook tells the room) and sends its history; `after` as in send_history.
local function enter(id, room, after)
  if member[id] and member[id][room] then
    send_history(id, room, after)
    confab.send(id, members_frame(room))
    return
  end
  if room_count(id) >= ROOMS_PER_USER then
    return send_error(id, "bad_room", "you are in too many rooms (" .. ROOMS_PER_USER .. ")")
  end
  confab.join(id, room)
  send_history(id, room, after)
end

-- Posts a room message: one encode, stored in the core's ring, one broadcast.
local function post(id, room, text, kind)
  local mid = confab.history_last(room) + 1
  local frame = cjson.encode{ type = "message", room = room, id = mid, ts = confab.now(),
                              from = name_of(id), text = text, kind = kind }
  confab.history_add(room, mid, frame)
  confab.broadcast(room, frame)
  -- The message ends the sender's typing notice at the others: the next keystroke may say so again.
  if typing[id] then typing[id][room] = nil end
end

local function rename(id, new)
  local old = name_of(id)
  if old == new then return send_info(id, "you are already " .. new) end
  by_key[fold(old)] = nil
  by_key[fold(new)] = id
  confab.set(id, "name", new)
  names[id] = new
  local rooms = confab.rooms_of(id)
  for _, room in ipairs(rooms) do
    confab.broadcast(room, cjson.encode{ type = "renamed", room = room, from = old, to = new })
    members_changed(room)
  end
  if #rooms == 0 then send_info(id, "you are now " .. new) end
end

local function direct(id, to, text)
  local target = by_key[fold(to)]
  if not target then return send_error(id, "no_such_user", "nobody is called " .. to) end
  local frame = cjson.encode{ type = "dm", from = name_of(id), to = name_of(target), text = text,
                              ts = confab.now() }
  confab.send(target, frame)
  if target ~= id then confab.send(id, frame) end
end

local function send_rooms(id)
  local list = {}
  for name, n in pairs(confab.rooms()) do list[#list + 1] = { name = name, members = n } end
  table.sort(list, function(a, b) return a.name < b.name end)
  confab.send(id, with_array({ type = "rooms" }, "rooms", list))
end

---------------------------------------------------------------------------------------------------
-- Validation helpers for handlers: each returns the value, or sends the error and returns nil.

local function want_room(id, room)
  local ok, code, msg = check_word(room, "room", ROOM_MAX)
  if not ok then send_error(id, code, msg) end
  return ok
end

local function want_member(id, room)
  if not (member[id] and member[id][room]) then
    send_error(id, "not_in_room", "you are not in " .. room)
    return nil
  end
  return room
end

local function want_text(id, text)
  local ok, code, msg = check_text(text)
  if not ok then send_error(id, code, msg) end
  return ok
end

local function want_name(id, name)
  local ok, code, msg = check_word(name, "name", NAME_MAX)
  if not ok then return send_error(id, code, msg) end
  local holder = by_key[fold(name)]
  if holder and holder ~= id then
    return send_error(id, "name_taken", name .. " is taken")
  end
  return ok
end

---------------------------------------------------------------------------------------------------
-- Commands inside say.text.

local commands = {}

function commands.join(id, room, arg)
  if arg == "" then return send_error(id, "bad_room", "usage: /join ROOM") end
  if want_room(id, arg) then enter(id, arg) end
end

function commands.leave(id, room, arg)
  local target = arg ~= "" and arg or room
  if want_room(id, target) and want_member(id, target) then confab.leave(id, target) end
end

function commands.nick(id, room, arg)
  if arg == "" then return send_error(id, "bad_name", "usage: /nick NAME") end
  if want_name(id, arg) then rename(id, arg) end
end

function commands.msg(id, room, arg)
  local to, text = arg:match("^(%S+)%s+(.+)$")
  if not to then return send_error(id, "bad_field", "usage: /msg NAME TEXT") end
  if want_text(id, text) then direct(id, to, text) end
end

function commands.me(id, room, arg)
  if arg == "" then return send_error(id, "bad_text", "usage: /me TEXT") end
  if want_member(id, room) and want_text(id, arg) then post(id, room, arg, "me") end
end

function commands.who(id, room)
  if not want_member(id, room) then return end
  local names = member_names(room)
  send_info(id, string.format("%s (%d): %s", room, #names, table.concat(names, ", ")))
end

function commands.rooms(id)
  send_rooms(id)
end

function commands.help(id)
  send_info(id, HELP)
end

---------------------------------------------------------------------------------------------------
-- Client messages. Each handler gets the sender's id and the decoded object.

local handlers = {}

function handlers.hello(id, msg)
  if name_of(id) then return send_error(id, "bad_type", "you already have a name; use nick") end
  local name = want_name(id, msg.name)
  if not name then return end
  local resume = msg.resume
  if resume == cjson.null then resume = nil end
  local rooms = {}
  if resume ~= nil then
    if type(resume) ~= "table" or type(resume.epoch) ~= "number" or type(resume.rooms) ~= "table" then
      return send_error(id, "bad_field", "resume is {epoch: N, rooms: {ROOM: LAST_ID, ...}}")
    end
    for room, last in pairs(resume.rooms) do
      local ok, code, m = check_word(room, "room", ROOM_MAX)
      if not ok then return send_error(id, code, m) end
      last = math.type(last) and math.tointeger(last)
      if not last or last < 0 then
        return send_error(id, "bad_field", "resume.rooms values are message ids")
      end
      rooms[#rooms + 1] = { room = room, last = last }
    end
    if #rooms > ROOMS_PER_USER then
      return send_error(id, "bad_field", "resume lists more than " .. ROOMS_PER_USER .. " rooms")
    end
    table.sort(rooms, function(a, b) return a.room < b.room end)
  end
  confab.set(id, "name", name)
  names[id] = name
  by_key[fold(name)] = id
  confab.send(id, cjson.encode{ type = "welcome", name = name, epoch = confab.epoch })
  if #rooms == 0 then return enter(id, LOBBY) end
  local same_run = resume.epoch == confab.epoch
  for _, r in ipairs(rooms) do enter(id, r.room, same_run and r.last) end
end

function handlers.say(id, msg)
  local room = want_room(id, msg.room)
  local text = room and want_text(id, msg.text)
  if not text then return end
  if text:sub(1, 1) == "/" then
    local cmd, arg = text:match("^/(%S*)%s*(.-)%s*$")
    local fn = commands[cmd:lower()]
    if not fn then
      return send_error(id, "unknown_command", "unknown command /" .. cmd .. "; " .. HELP)
    end
    return fn(id, room, arg)
  end
  if want_member(id, room) then post(id, room, text, "say") end
end

function handlers.me(id, msg)
  local room = want_room(id, msg.room)
  local text = room and want_text(id, msg.text)
  if text and want_member(id, room) then post(id, room, text, "me") end
end

function handlers.join(id, msg)
  local room = want_room(id, msg.room)
  if room then enter(id, room) end
end

function handlers.leave(id, msg)
  local room = want_room(id, msg.room)
  if room and want_member(id, room) then confab.leave(id, room) end
end

function handlers.nick(id, msg)
  local name = want_name(id, msg.name)
  if name then rename(id, name) end
end

function handlers.dm(id, msg)
  if type(msg.to) ~= "string" or not utf8.len(msg.to) then
    return send_error(id, "bad_field", "to must be a string")
  end
  local text = want_text(id, msg.text)
  if text then direct(id, msg.to, text) end
end

function handlers.typing(id, msg)
  local room = want_room(id, msg.room)
  if not (room and want_member(id, room)) then return end
  local now = confab.now()
  local seen = typing[id]
  if not seen then
    seen = {}
    typing[id] = seen
  end
  if seen[room] and now - seen[room] < TYPING_EVERY and now >= seen[room] then return end
  seen[room] = now
  confab.broadcast(room, cjson.encode{ type = "typing", room = room, name = name_of(id) }, id)
end

function handlers.who(id, msg)
  local room = want_room(id, msg.room)
  if room then confab.send(id, members_frame(room)) end
end

function handlers.rooms(id)
  send_rooms(id)
end

-- Token bucket per connection: FLOOD_RATE per second, bursts of FLOOD_BURST.
local function take_token(id)
  local now = confab.now()
  local b = flood[id]
  if not b then
    b = { tokens = FLOOD_BURST, at = now }
    flood[id] = b
  end
  b.tokens = math.min(FLOOD_BURST, b.tokens + math.max(0, now - b.at) * FLOOD_RATE / 1000)
  b.at = now
  if b.tokens < 1 then return false end
  b.tokens = b.tokens - 1
  return true
end

local function decode(data)
  if data:find("^%s*{") then
    local ok, msg = pcall(cjson.decode, data)
    if ok and type(msg) == "table" then return msg end
  end
  return nil
end

confab.on("message", function(ev)
  local id = ev.id
  local msg = not ev.binary and decode(ev.data)
  -- The first hello is free and a well-formed typing notice has its own throttle; every other
  -- message (commands, bad frames included) costs a token.
  local free = msg and ((msg.type == "hello" and not name_of(id)) or (msg.type == "typing"
    and name_of(id) and type(msg.room) == "string" and member[id] and member[id][msg.room]))
  if not free and not take_token(id) then
    return send_error(id, "flood", "too many messages; slow down")
  end
  if not msg then
    return send_error(id, "bad_json", "send one JSON object per text frame")
  end
  local handler = type(msg.type) == "string" and handlers[msg.type]
  if not handler then
    return send_error(id, "bad_type", "unknown or missing type")
  end
  if msg.type ~= "hello" and not name_of(id) then
    return send_error(id, "no_name", "say hello with a name first")
  end
  handler(id, msg)
end)

---------------------------------------------------------------------------------------------------
-- Core events.

confab.on("join", function(ev)
  local rooms = member[ev.id] or {}
  member[ev.id] = rooms
  rooms[ev.room] = true
  local name = name_of(ev.id)
  if not name then return end
  confab.broadcast(ev.room, cjson.encode{ type = "joined", room = ev.room, name = name })
  members_changed(ev.room, ev.id)
end)

confab.on("leave", function(ev)
  if member[ev.id] then member[ev.id][ev.room] = nil end
  if typing[ev.id] then typing[ev.id][ev.room] = nil end
  local name = name_of(ev.id)
  if not name then return end
  local frame = cjson.encode{ type = "left", room = ev.room, name = name }
  confab.broadcast(ev.room, frame)
  if ev.reason == "leave" then confab.send(ev.id, frame) end
  if #confab.members(ev.room) > 0 then
    members_changed(ev.room)
  elseif roster[ev.room] and not roster[ev.room].timer then
    roster[ev.room] = nil
  end
end)

confab.on("disconnect", function(ev)
  local name = name_of(ev.id)
  if name and by_key[fold(name)] == ev.id then by_key[fold(name)] = nil end
  names[ev.id], member[ev.id], flood[ev.id], typing[ev.id] = nil, nil, nil, nil
end)

-- After a hot reload the caches are empty: rebuild them from the core.
confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do
    local name = confab.get(id, "name")
    if name then
      names[id] = name
      by_key[fold(name)] = id
    end
    local rooms = confab.rooms_of(id)
    if rooms and #rooms > 0 then
      member[id] = {}
      for _, room in ipairs(rooms) do member[id][room] = true end
    end
  end
end)
