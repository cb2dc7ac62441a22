-- The default chat of confab: implements the protocol in README.md on top of the hooks of docs/hooks.md.
--
-- What must survive a reload lives in the core: a user's name is the connection attribute "name",
-- message ids and history are the room history rings. The tables below are caches and rate-limit
-- state that the `reload` hook rebuilds (or that may simply start afresh).
--
-- Names and user ids are claims (confab.claim: unique across every node of a cluster):
--   "k:KEY"   -> the user id (uid) first given to that key (kept for good)
--   "n:SKEL"  -> who holds the name with that skeleton: "ID UID K NAME" (K: "k" keyed, "a" not);
--                released when the holder leaves (a keyed user's after its leave grace)
--   "u:UID"   -> the latest name of a keyed user's uid
--   "o:SKEL"  -> the uid of the latest keyed holder of a name ("0" once someone without a key
--                took it after them): direct messages reach users who are away
-- Conversations (of users whose hello carries a `key`, as the page's does) are stored like rooms
-- (confab.post/replay), under names no room can take (room names never contain "~"):
--   "~p:UID"  -> the uids of the people UID has direct messages with ("UID ID", confab.post)
--   "~d:A:B"  -> the direct messages between uids A < B (confab.post/replay: like a room, so on
--                every node with --redis)
-- A uid is the connection id of the key's first connection: never reused while the server runs.
--
-- Many nodes (confab --redis): the connection ids of confab.members are those of every node, and
-- what this script keeps per connection (names, keys, uids) is read with confab.get for the
-- others'. Hooks run on the node where the event happened; a node that dies has its connections'
-- leave and disconnect hooks run by the node that notices. A claim's answer may come later than
-- the message that asked for it: the handler goes on in the claim's callback (see later()).
--
-- Cost model: a connection that sends nothing has no Lua state at all, and joins nothing before its
-- hello. A room message is one cjson.encode and one confab.broadcast (the core encodes the frame
-- once for every member).

local confab = require "confab"
local cjson = require "cjson"

local NAME_MAX = 24          -- characters
local NAME_MAX_BYTES = 60    -- a name's bytes
local KEY_MIN, KEY_MAX = 16, 60  -- a client's secret key: characters of [A-Za-z0-9_-]
local CID_MAX = 40           -- a client-chosen request id: 1-40 characters of [A-Za-z0-9_-]
local LEAVE_GRACE = 5        -- seconds a keyed user's rooms wait for a reconnect before "left"
local DM_RESUME_MAX = 100    -- pairs listed in resume.dms
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
-- Many nodes: a list this node sent may have been computed before it heard of another node's
-- change whose joined/left reached the client first (the roster hook). For this long after it
-- sent one, a change it hears of sends the list again (ms: beyond the subscriber link's lag,
-- which its ping bounds to about 3 s before it is reconnected and the mirror read again).
local ROSTER_WINDOW = 10000

local HELP = "commands: /join ROOM, /leave [ROOM], /nick NAME, /msg NAME TEXT, /me TEXT, /who, "
  .. "/rooms, /help"

local names = {}     -- id -> name (a cache of the "name" attributes)
local claiming = {}  -- id -> true while its hello waits for its claims
local pairs_known = {} -- "~d:A:B" -> true: listed in both users' conversations already
local member = {}    -- id -> { [room] = true } (mirror of the core's rooms_of, for fast checks)
local flood = {}     -- id -> { tokens =, at = } (created on a connection's first message)
local typing = {}    -- id -> { [room] = ms of the last typing notice sent }
local roster = {}    -- room -> { tokens =, at =, timer = } for members broadcasts
local keys = {}      -- id -> the key of its hello (keyed users only)
local uids = {}      -- id -> uid (the connection id itself for users without a key)
local pending = {}   -- skeleton -> { name=, key=, uid=, value=, rooms = { [room] = true }, timer= }: in grace
local graced = {}    -- key -> { [skeleton] = true }: the entries of `pending` under each key
local ghosts = {}    -- room -> { [name] = true }: members in their leave grace, still listed
local request = nil  -- { id=, cid=, answered=, later= } while a client message is handled

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

local INDIC = { "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu",
                "Kannada", "Malayalam", "Sinhala" }

-- The script (writing system) of a name character, or nil for digits, "_" and "-" (which go with
-- any script). Han, kana, Hangul, Bopomofo and Yi are one group, as Japanese and Korean names
-- mix them; each Indic block is its own script.
local function script_of(cp)
  if cp < 0x80 then
    if (cp >= 65 and cp <= 90) or (cp >= 97 and cp <= 122) then return "Latin" end
    return nil
  elseif cp >= 0xFF10 and cp <= 0xFF19 then return nil
  elseif cp == 0xB5 or (cp >= 0x370 and cp <= 0x3FF) or (cp >= 0x1F00 and cp <= 0x1FFF) then
    return "Greek"
  elseif cp <= 0x2AF or (cp >= 0x1E00 and cp <= 0x1EFF) or (cp >= 0xFF21 and cp <= 0xFF5A) then
    return "Latin"
  elseif cp >= 0x400 and cp <= 0x52F then return "Cyrillic"
  elseif cp >= 0x531 and cp <= 0x587 then return "Armenian"
  elseif cp >= 0x5D0 and cp <= 0x5EA then return "Hebrew"
  elseif cp >= 0x620 and cp <= 0x6FF then return "Arabic"
  elseif cp >= 0x900 and cp <= 0xDFF then return INDIC[(cp - 0x900) // 0x80 + 1]
  elseif cp >= 0xE01 and cp <= 0xE7F then return "Thai"
  elseif cp >= 0xE81 and cp <= 0xEFF then return "Lao"
  elseif cp >= 0x10A0 and cp <= 0x10FF then return "Georgian"
  end
  return "CJK"
end

-- "name" or "room" is `kind`; returns the string or nil, error code, message. A name's letters
-- come from one script (see script_of): "аlice" with a Cyrillic "а" is refused.
local function check_word(s, kind, max_chars)
  local code = kind == "room" and "bad_room" or "bad_name"
  if type(s) ~= "string" then return nil, "bad_field", kind .. " must be a string" end
  local n = utf8.len(s)
  local max_bytes = kind == "room" and ROOM_MAX_BYTES or NAME_MAX_BYTES
  local what = string.format("a %s is 1-%d letters, digits, _ or -", kind, max_chars)
  if not n or n == 0 then return nil, code, what end
  if n > max_chars then
    return nil, code, string.format("that %s is too long (%d characters; at most %d)", kind, n, max_chars)
  end
  if #s > max_bytes then
    return nil, code, string.format("that %s is too long (%d bytes; at most %d)", kind, #s, max_bytes)
  end
  local script
  for _, cp in utf8.codes(s) do
    if not is_word_char(cp) then return nil, code, what end
    local sc = kind == "name" and script_of(cp)
    if sc then
      if script and sc ~= script then
        return nil, code, string.format("a name uses one script; this one mixes %s and %s letters",
                                        script, sc)
      end
      script = sc
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

-- Look-alikes, after case folding: Cyrillic and Greek letters that imitate Latin ones (in either
-- case, since names compare case-insensitively: Cyrillic "В" folds to "в" and imitates "B"), a few
-- Latin variants, and the digits 0 and 1. Two names with the same skeleton are one name.
local CONFUSABLE = {
  -- Cyrillic
  [0x430] = "a", [0x432] = "b", [0x435] = "e", [0x450] = "e", [0x451] = "e", [0x43A] = "k",
  [0x43C] = "m", [0x43D] = "h", [0x43E] = "o", [0x440] = "p", [0x441] = "c", [0x442] = "t",
  [0x443] = "y", [0x445] = "x", [0x455] = "s", [0x456] = "i", [0x457] = "i", [0x458] = "j",
  [0x4BB] = "h", [0x4CF] = "l", [0x501] = "d", [0x51B] = "q", [0x51D] = "w", [0x4AF] = "y",
  [0x44C] = "b",
  -- Greek
  [0x3B1] = "a", [0x3B2] = "b", [0x3B5] = "e", [0x3B6] = "z", [0x3B7] = "h", [0x3B9] = "i",
  [0x3BA] = "k", [0x3BC] = "m", [0x3BD] = "v", [0x3BF] = "o", [0x3C1] = "p", [0x3C4] = "t",
  [0x3C5] = "u", [0x3C7] = "x", [0x3F2] = "c", [0x3F3] = "j", [0x3AF] = "i", [0x3CC] = "o",
  -- Latin variants and digits
  [0x131] = "i", [0x261] = "g", [0x269] = "i", [0x251] = "a", [0x30] = "o", [0x31] = "l",
}

-- The key names are unique by: folded, look-alikes mapped to Latin, "rn" read as "m".
local function skeleton(name)
  local out = {}
  for _, cp in utf8.codes(name) do
    local c = fold_cp(cp)
    out[#out + 1] = CONFUSABLE[c] or utf8.char(c)
  end
  return (table.concat(out):gsub("rn", "m"))
end

-- Whitespace and invisible characters: a text made only of these says nothing.
local function is_blank_cp(c)
  return c == 9 or c == 10 or c == 32 or c == 0xA0 or c == 0x1680 or c == 0x180E
    or (c >= 0x2000 and c <= 0x200F) or c == 0x2028 or c == 0x2029 or c == 0x202F
    or (c >= 0x205F and c <= 0x2064) or c == 0x3000 or c == 0xFEFF
end

-- Message text: 1-2000 characters, no control characters but newline and tab, no bidi embedding,
-- override or isolate controls (U+202A-202E, U+2066-2069: they reorder what follows them, the
-- sender's name included), not only whitespace.
local function check_text(s)
  if type(s) ~= "string" then return nil, "bad_field", "text must be a string" end
  local n = utf8.len(s)
  if not n then return nil, "bad_text", "text is not valid UTF-8" end
  if n == 0 then return nil, "bad_text", "text is empty" end
  if n > TEXT_MAX then return nil, "too_long", "text is longer than " .. TEXT_MAX .. " characters" end
  if s:find("[\0-\8\11-\31\127]") or s:find("\194[\128-\159]") then
    return nil, "bad_text", "text contains control characters"
  end
  if s:find("\226\128[\170-\174]") or s:find("\226\129[\166-\169]") then
    return nil, "bad_text", "text contains bidi override or isolate controls (U+202A-202E, U+2066-2069)"
  end
  local blank = true
  for _, cp in utf8.codes(s) do
    if not is_blank_cp(cp) then blank = false break end
  end
  if blank then return nil, "bad_text", "text is only whitespace" end
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

-- The client message being handled carries a cid: the first frame that answers it carries it too
-- (the message or dm it made, or an error); when there is none, the handler's end sends "ok".
local function take_cid()
  if request and not request.answered then
    request.answered = true
    return request.cid
  end
  return nil
end

-- Sends "ok" for the request if it has a cid and nothing answered it.
local function finish(req)
  if req and req.cid and not req.answered then
    req.answered = true
    confab.send(req.id, cjson.encode{ type = "ok", cid = req.cid })
  end
end

-- Wraps fn (a claim's callback) so that it runs as part of the client message being handled now:
-- what it sends answers that message's cid, and its "ok" waits for it.
local function later(fn)
  local req = request
  if req then req.later = (req.later or 0) + 1 end
  return function(...)
    local saved = request
    request = req
    fn(...)
    if req then
      req.later = req.later - 1
      if req.later == 0 then finish(req) end
    end
    request = saved
  end
end

local function send_error(id, code, message)
  confab.send(id, cjson.encode{ type = "error", code = code, message = message, cid = take_cid() })
end

local function send_info(id, text)
  confab.send(id, cjson.encode{ type = "info", text = text })
end

-- A connection's name: from the cache for this node's, from its attribute for another node's.
local function name_of(id)
  return names[id] or (confab.get(id, "name"))
end

local function key_of(id)
  if names[id] then return keys[id] end
  return (confab.get(id, "key"))
end

local function uid_of(id)
  if names[id] then return uids[id] end
  return confab.get(id, "uid") or id
end

-- Whether id is a connection that still has its name: this node's as it knows; another node's
-- is taken as alive (this node may not have heard of it yet: what is sent to a connection that is
-- gone there is dropped).
local function alive(id)
  if names[id] then return true end
  if id >> 32 ~= confab.node() then return true end
  return name_of(id) ~= nil
end

local function in_room(id, room)
  if member[id] then return member[id][room] == true end
  for _, r in ipairs(confab.rooms_of(id) or {}) do
    if r == room then return true end
  end
  return false
end

-- The claim of a name's skeleton: holder id, uid, keyed, name, the claim's value; or nil.
local function name_claim(skel)
  local v = confab.claimed("n:" .. skel)
  if not v then return nil end
  local hid, huid, k, hname = v:match("^(%d+) (%d+) ([ka]) (.+)$")
  return math.tointeger(tonumber(hid)), math.tointeger(tonumber(huid)), k == "k", hname, v
end

local function claim_value(id, uid, keyed, name)
  return string.format("%d %d %s %s", id, uid, keyed and "k" or "a", name)
end

-- Names of a room's members, in join order, then those in their leave grace (still listed: a
-- reload should not make anyone blink out of the list). A user on two connections at once (the
-- moment a new connection replaces an old one) is listed once.
local function member_names(room)
  local list, seen = {}, {}
  for _, id in ipairs(confab.members(room)) do
    local n = name_of(id)
    if n and not seen[n] then
      seen[n] = true
      list[#list + 1] = n
    end
  end
  for n in pairs(ghosts[room] or {}) do
    if not seen[n] then
      seen[n] = true
      list[#list + 1] = n
    end
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

-- Tells a room that `name` left (and `id` itself, when it asked to leave), and drops the name
-- from the room's grace list.
local function announce_left(room, name, id)
  local g = ghosts[room]
  if g then
    g[name] = nil
    if next(g) == nil then ghosts[room] = nil end
  end
  local frame = cjson.encode{ type = "left", room = room, name = name }
  confab.broadcast(room, frame)
  if id then confab.send(id, frame) end
  if #confab.members(room) > 0 then
    members_changed(room)
  elseif roster[room] and not roster[room].timer then
    roster[room] = nil
  end
end

-- The grace entry of a keyed user's name (made by its first leave or its disconnect), or a new one.
local function grace_entry(skel, name, key, uid, value)
  local p = pending[skel]
  if not p then
    p = { name = name, key = key, uid = uid, value = value, rooms = {} }
    pending[skel] = p
    graced[key] = graced[key] or {}
    graced[key][skel] = true
  end
  return p
end

-- Ends the grace entry of a name, if any, without announcing anything; returns it.
local function grace_end(skel)
  local p = pending[skel]
  if not p then return nil end
  pending[skel] = nil
  local g = graced[p.key]
  g[skel] = nil
  if next(g) == nil then graced[p.key] = nil end
  if p.timer then p.timer:cancel() end
  return p
end

-- The grace period of a keyed user that went away ended without a reconnect: its rooms hear it,
-- and the name is free. Unless the user came back on another node (the claim moved there): then
-- its name only drops out of this node's grace lists.
local function grace_over(skel)
  if pending[skel] then pending[skel].timer = nil end
  local p = grace_end(skel)
  if not p then return end
  local _, huid, keyed = name_claim(skel)
  local back = not confab.release("n:" .. skel, p.value) and keyed and huid == p.uid
  for room in pairs(p.rooms) do
    if back then
      if ghosts[room] then
        ghosts[room][p.name] = nil
        if next(ghosts[room]) == nil then ghosts[room] = nil end
      end
      if #confab.members(room) > 0 then members_changed(room) end
    else
      announce_left(room, p.name)
    end
  end
end

-- A keyed user says hello (as `name`) while names of its key are in their grace period. In each
-- room it is `entering`, one graced name becomes the new one: the same name stays (the join is
-- quiet), another spelling or another name is "renamed" to the room, so that nobody is listed
-- twice. Graced names of the rooms it does not come back to (or where it is `settled` already,
-- on the connection it replaces) are announced as left. The entry of `name`'s skeleton goes first.
local function settle_grace(key, skel, name, entering, settled)
  local order = {}
  for s in pairs(key and graced[key] or {}) do
    if s ~= skel then order[#order + 1] = s end
  end
  table.sort(order)
  if pending[skel] then table.insert(order, 1, skel) end
  for _, s in ipairs(order) do
    local p = grace_end(s)
    confab.release("n:" .. s, p.value)   -- a name of the user's it does not take back
    for room in pairs(p.rooms) do
      if ghosts[room] and ghosts[room][p.name] then
        if entering[room] and not settled[room] then
          settled[room] = true
          if p.name ~= name then
            ghosts[room][p.name] = nil
            ghosts[room][name] = true
            confab.broadcast(room, cjson.encode{ type = "renamed", room = room, from = p.name,
                                                 to = name })
            members_changed(room)
          end
        else
          announce_left(room, p.name)
        end
      end
    end
  end
end

---------------------------------------------------------------------------------------------------
-- Rooms and history.

---------------------------------------------------------------------------------------------------
-- Identity (see the header): claims, and lists stored like rooms.

-- Reads a stored list (confab.replay) for fn, which runs as part of the message being handled;
-- a read refused at once gives fn(nil, err).
local function replay_later(key, after, fn)
  local cb = later(fn)
  local ok, err = confab.replay(key, after, cb)
  if not ok then cb(nil, err) end
end

-- Adds `peer` to the list of conversations of `uid` ("~p:UID": entries "PEER ID", stored like a
-- room's messages, so on every node; a pair may be listed more than once: readers skip repeats).
local function peer_push(uid, peer)
  confab.post("~p:" .. uid, tostring(peer) .. " ", "")
end

-- Remembers key = value across the cluster: a claim this node takes over from whoever held it.
local function remember(key, value)
  local cur = confab.claimed(key)
  if cur ~= value then confab.claim(key, value, function() end, cur) end
end

-- Records that `id` (name, uid, keyed or not) holds `name` now: a keyed user's latest name
-- ("u:UID") and the latest keyed holder of a name ("o:SKEL", "0" once someone without a key
-- took it), for direct messages to users who are away.
local function claim(id, name)
  local uid = uids[id]
  local skel = skeleton(name)
  if keys[id] then
    remember("u:" .. uid, name)
    remember("o:" .. skel, tostring(uid))
  elseif confab.claimed("o:" .. skel) then
    remember("o:" .. skel, "0")
  end
end

-- The latest name of a keyed user's uid (and true), or nil.
local function name_of_uid(uid)
  local name = confab.claimed("u:" .. uid)
  if not name then return nil end
  return name, true
end

local function pair_of(a, b)
  if a > b then a, b = b, a end
  return a .. "-" .. b, "~d:" .. a .. ":" .. b
end


---------------------------------------------------------------------------------------------------
-- Sends the `history` of a room. `after` is the last id the client has (resume), or nil for a
-- plain join, or false when the client's ids are from another server run. The core answers
-- (at once on one node; from Redis with --redis, and then the room's newer messages reach the
-- client after this history, never before or twice).
local function send_history(id, room, after)
  local ok, err = confab.replay(room, after or 0, function(list, complete)
    if not list then
      return confab.send(id, cjson.encode{ type = "error", code = "unavailable",
                                           message = "the history of " .. room .. " is not available: " .. complete })
    end
    if after == false then complete = false end
    local reset = after == nil or not complete
    local head = cjson.encode{ type = "history", room = room, complete = complete, reset = reset }
    confab.send(id, head:sub(1, -2) .. ',"messages":[' .. table.concat(list, ",") .. "]}")
  end)
  if not ok then
    confab.send(id, cjson.encode{ type = "error", code = "unavailable",
                                  message = "the history of " .. room .. " is not available: " .. err })
  end
end

-- The direct messages of one pair, the same way: `dm_history` with the pair and the peer's name.
local function send_dm_history(id, pair, key, with, after)
  replay_later(key, after or 0, function(list, complete)
    if not list then return end
    if after == false then complete = false end
    local reset = after == nil or not complete
    if not with and #list > 0 then   -- the peer's name, when this node never knew it
      local ok, m = pcall(cjson.decode, list[#list])
      if ok and type(m) == "table" then
        with = m.from == name_of(id) and m.to or m.from
      end
    end
    local head = cjson.encode{ type = "dm_history", pair = pair, with = with,
                               complete = complete, reset = reset }
    confab.send(id, head:sub(1, -2) .. ',"messages":[' .. table.concat(list, ",") .. "]}")
  end)
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

-- Posts a room message: one encode; the core gives it the room's next id (from Redis with
-- --redis), stores it in the room's history and delivers it to every member, in id order.
local function post(id, room, text, kind)
  local cid = take_cid()
  local frame = cjson.encode{ type = "message", room = room, id = -1, ts = confab.now(),
                              from = name_of(id), text = text, kind = kind, cid = cid }
  -- `"id":-1` cannot occur inside an encoded string (its quotes would be escaped).
  local head, tail = frame:match('^(.-"id":)%-1([,}].*)$')
  local ok, err = confab.post(room, head, tail)
  if not ok then
    return confab.send(id, cjson.encode{ type = "error", code = "unavailable", room = room,
                                         message = "not sent (" .. err .. "): try again", cid = cid })
  end
  -- The message ends the sender's typing notice at the others: the next keystroke may say so again.
  if typing[id] then typing[id][room] = nil end
end

-- Claims key (confab.claim) for fn, which runs as part of the message being handled (later);
-- a claim refused at once (Redis unavailable) gives fn(nil, err).
local function claim_key(key, value, fn, old)
  local cb = later(fn)
  local ok, err = confab.claim(key, value, cb, old)
  if not ok then cb(nil, err) end
end

-- The answer to a hello or nick whose name someone else holds (`held` is the claim's value).
local function refuse_name(id, name, held)
  held = held:match("^%d+ %d+ [ka] (.+)$") or held
  if fold(held) == fold(name) then return send_error(id, "name_taken", name .. " is taken") end
  return send_error(id, "name_confusable", name .. " looks too much like " .. held
                    .. ", who is here")
end

-- A connection of this node takes a new name (claimed already): its rooms hear "renamed".
local function apply_rename(id, old, new)
  confab.set(id, "name", new)
  names[id] = new
  claim(id, new)
  local rooms = confab.rooms_of(id)
  for _, room in ipairs(rooms) do
    confab.broadcast(room, cjson.encode{ type = "renamed", room = room, from = old, to = new })
    members_changed(room)
  end
  if #rooms == 0 then send_info(id, "you are now " .. new) end
end

-- /nick: claims the new name's skeleton (the same one when only the spelling changes), then
-- renames and lets the old skeleton go.
local function rename(id, new)
  local old = name_of(id)
  if old == new then return send_info(id, "you are already " .. new) end
  local oskel, nskel = skeleton(old), skeleton(new)
  local value = claim_value(id, uids[id], keys[id] ~= nil, new)
  local _, _, _, _, current = name_claim(oskel)
  claim_key("n:" .. nskel, value, function(ok, held)
    if ok == nil then return send_error(id, "unavailable", "names cannot be changed now: " .. held) end
    if names[id] ~= old then   -- gone, or renamed meanwhile
      if ok and nskel ~= oskel then confab.release("n:" .. nskel, value) end
      return
    end
    if not ok then return refuse_name(id, new, held) end
    if nskel ~= oskel then confab.release("n:" .. oskel, current) end
    apply_rename(id, old, new)
  end, nskel == oskel and current or nil)
end

-- Who a direct message to `to` goes to: the connection holding the name (if online), the uid,
-- the name. An offline name is reachable while its last holder had a key and still uses it.
local function dm_target(to)
  local skel = skeleton(to)
  if #skel > NAME_MAX_BYTES then return nil end   -- no name is that long
  local hid, huid, _, hname = name_claim(skel)
  if hid then
    if alive(hid) then return hid, huid, hname end
    return nil, huid, hname   -- in its leave grace
  end
  local uid = math.tointeger(tonumber(confab.claimed("o:" .. skel) or ""))
  if not uid or uid == 0 then return nil end
  local name, keyed = name_of_uid(uid)
  if not keyed or skeleton(name) ~= skel then return nil end
  return nil, uid, name
end

-- A direct message: stored in the pair's ring (so it survives reloads and waits for an offline
-- recipient), sent to the recipient if online and echoed to the sender.
local function direct_to(id, to, text)
  local target, tuid, tname = dm_target(to)
  if not tuid then return send_error(id, "no_such_user", "nobody is called " .. to) end
  local uid = uids[id]
  local pair, key = pair_of(uid, tuid)
  local cid = take_cid()
  local frame = cjson.encode{ type = "dm", pair = pair, id = -1, from = name_of(id), to = tname,
                              text = text, ts = confab.now(), cid = cid }
  local head, tail = frame:match('^(.-"id":)%-1([,}].*)$')
  local function refused(err)
    confab.send(id, cjson.encode{ type = "error", code = "unavailable", cid = cid,
                                  message = "not sent (" .. tostring(err) .. "): try again" })
  end
  local done = later(function(mid, err)
    if not mid then return refused(err) end
    local f = head .. mid .. tail
    if target and target ~= id then confab.send(target, f) end
    confab.send(id, f)
    if not target then send_info(id, tname .. " is offline; they will see it when they come back") end
  end)
  local ok, err = confab.post(key, head, tail, done)
  if not ok then return done(nil, err) end
  -- The pair goes into both users' lists of conversations the first time this node sees it.
  if not pairs_known[key] then
    pairs_known[key] = true
    if keys[id] then peer_push(uid, tuid) end
    peer_push(tuid, uid)
  end
end

-- The name's claim is read from the cluster first (another node's user may have just taken it).
local function direct(id, to, text)
  local skel = skeleton(to)
  if #skel > NAME_MAX_BYTES then return direct_to(id, to, text) end
  confab.claimed("n:" .. skel, later(function() direct_to(id, to, text) end))
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

-- A name `id` may take, as far as this node knows (the claim decides). `key` is the key of a hello
-- (a keyed user may take back its own name from its grace period or from an older connection).
-- Returns the name and, when it is the user's own, the claim's value it takes over.
local function want_name(id, name, key)
  local ok, code, msg = check_word(name, "name", NAME_MAX)
  if not ok then return send_error(id, code, msg) end
  local hid, huid, hkeyed, hname, value = name_claim(skeleton(name))
  if not hid or hid == id then return ok end
  local mine = key and hkeyed and huid == math.tointeger(tonumber(confab.claimed("k:" .. key) or ""))
  if not mine then return refuse_name(id, name, hname) end
  return ok, value
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

-- The rest of a hello, once its claims are granted: `value` is the name's claim, `replaces` the
-- value it took over (the user's older connection or leave grace), if any.
local function welcome(id, name, key, uid, value, replaces, rooms, dms, resume)
  local skel = skeleton(name)
  local old = replaces and math.tointeger(tonumber(replaces:match("^%d+")))
  replaces = old and old ~= id and alive(old) and old or nil
  local entering, settled = {}, {}   -- rooms this connection joins; rooms where the user is listed
  if #rooms == 0 then entering[LOBBY] = true end
  for _, r in ipairs(rooms) do entering[r.room] = true end
  if replaces then
    -- The same user (same key) on a new connection: the old one goes, quietly (see leave hook),
    -- once it has the new spelling of the name (its rooms hear "renamed" if the case changed).
    if names[replaces] and names[replaces] ~= name then apply_rename(replaces, names[replaces], name) end
    for _, room in ipairs(confab.rooms_of(replaces) or {}) do settled[room] = true end
    confab.close(replaces, 4000, "replaced by a newer connection")
  end
  -- Settled before entering: the join hook finds the name in the room's grace list (quiet join).
  settle_grace(key, skel, name, entering, settled)
  confab.set(id, "name", name)
  names[id] = name
  uids[id] = uid
  if key then
    keys[id] = key
    confab.set(id, "key", key)
    confab.set(id, "uid", uid)
  end
  claim(id, name)
  confab.send(id, cjson.encode{ type = "welcome", name = name, epoch = confab.epoch,
                                uid = uids[id] })
  local same_run = resume ~= nil and resume.epoch == confab.epoch
  if #rooms == 0 then enter(id, LOBBY) end
  for _, r in ipairs(rooms) do enter(id, r.room, same_run and r.last) end
  if key then
    replay_later("~p:" .. uids[id], 0, function(list)
      local seen = {}
      for _, entry in ipairs(list or {}) do
        local peer = math.tointeger(tonumber(entry:match("^%d+")))
        if peer and not seen[peer] then
          seen[peer] = true
          local pair, pkey = pair_of(uids[id], peer)
          pairs_known[pkey] = true
          local last = dms[pair]
          send_dm_history(id, pair, pkey, (name_of_uid(peer)), same_run and last or (last and false))
        end
      end
    end)
  end
end

function handlers.hello(id, msg)
  if name_of(id) or claiming[id] then
    return send_error(id, "bad_type", "you already have a name; use nick")
  end
  local key = msg.key
  if key == cjson.null then key = nil end
  if key ~= nil and (type(key) ~= "string" or #key < KEY_MIN or #key > KEY_MAX
                     or key:find("[^%w_-]")) then
    return send_error(id, "bad_field", string.format("key is %d-%d characters of A-Z a-z 0-9 _ -",
                                                     KEY_MIN, KEY_MAX))
  end
  local name, replaces = want_name(id, msg.name, key)
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
  local dms = {}
  if resume ~= nil and resume.dms ~= nil and resume.dms ~= cjson.null then
    if type(resume.dms) ~= "table" then
      return send_error(id, "bad_field", "resume.dms is {PAIR: LAST_ID, ...}")
    end
    local n = 0
    for pair, last in pairs(resume.dms) do
      last = math.type(last) and math.tointeger(last)
      n = n + 1
      if type(pair) ~= "string" or not last or last < 0 or n > DM_RESUME_MAX then
        return send_error(id, "bad_field", "resume.dms is {PAIR: LAST_ID, ...} (at most "
                          .. DM_RESUME_MAX .. ")")
      end
      dms[pair] = last
    end
  end
  claiming[id] = true
  -- The user id (a key's first connection), then the name; each a claim across the cluster.
  -- `retried`: the name is the user's own (same uid, keyed) but held under another value than
  -- this node knew (its view lagged): asked once more, taking over that value.
  local function named(ok, uid, retried)
    if ok == nil or claiming[id] ~= true then return end
    uid = math.tointeger(tonumber(uid))
    local value = claim_value(id, uid, key ~= nil, name)
    claim_key("n:" .. skeleton(name), value, function(got, held)
      local gone = claiming[id] ~= true
      local _, huid, hk = (held or ""):match("^(%d+) (%d+) ([ka]) ")
      if got == false and key and not retried and hk == "k"
         and math.tointeger(tonumber(huid)) == uid then
        replaces = held
        return named(true, uid, true)
      end
      claiming[id] = nil
      if gone then
        if got then confab.release("n:" .. skeleton(name), value) end
      elseif got == nil then
        send_error(id, "unavailable", "names cannot be taken now: " .. held)
      elseif not got then
        refuse_name(id, name, held)
      else
        welcome(id, name, key, uid, value, replaces, rooms, dms, resume)
      end
    end, replaces)
  end
  if key then
    claim_key("k:" .. key, tostring(id), function(ok, uid)
      if ok == nil then
        claiming[id] = nil
        return send_error(id, "unavailable", "names cannot be taken now: " .. uid)
      end
      named(true, uid)
    end)
  else
    named(true, id)
  end
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
  local cid = msg and msg.cid
  if cid == cjson.null then cid = nil end
  local bad_cid = cid ~= nil and (type(cid) ~= "string" or #cid == 0 or #cid > CID_MAX
                                  or cid:find("[^%w_-]") ~= nil)
  if bad_cid then cid = nil end
  request = { id = id, cid = cid, answered = false }
  -- The first hello is free and a well-formed typing notice has its own throttle; every other
  -- message (commands, bad frames included) costs a token.
  local free = msg and ((msg.type == "hello" and not name_of(id)) or (msg.type == "typing"
    and name_of(id) and type(msg.room) == "string" and member[id] and member[id][msg.room]))
  if not free and not take_token(id) then
    send_error(id, "flood", "too many messages; slow down")
  elseif not msg then
    send_error(id, "bad_json", "send one JSON object per text frame")
  elseif bad_cid then
    send_error(id, "bad_field", "cid is 1-" .. CID_MAX .. " characters of A-Z a-z 0-9 _ -")
  else
    local handler = type(msg.type) == "string" and handlers[msg.type]
    if not handler then
      send_error(id, "bad_type", "unknown or missing type")
    elseif msg.type ~= "hello" and not name_of(id) then
      send_error(id, "no_name", "say hello with a name first")
    else
      handler(id, msg)
      if not request.later or request.later == 0 then finish(request) end
    end
  end
  request = nil
end)

---------------------------------------------------------------------------------------------------
-- Core events.

-- A join is announced, unless the user is coming back from its leave grace (a reload, a dropped
-- link) or is already in the room on its older connection: then only the joiner hears of it.
confab.on("join", function(ev)
  local rooms = member[ev.id] or {}
  member[ev.id] = rooms
  rooms[ev.room] = true
  local name = name_of(ev.id)
  if not name then return end
  local frame = cjson.encode{ type = "joined", room = ev.room, name = name }
  local quiet = ghosts[ev.room] and ghosts[ev.room][name]
  if quiet then
    ghosts[ev.room][name] = nil
    if next(ghosts[ev.room]) == nil then ghosts[ev.room] = nil end
  else
    for _, other in ipairs(confab.members(ev.room)) do
      if other ~= ev.id and name_of(other) == name then quiet = true end
    end
  end
  if quiet then
    confab.send(ev.id, frame)
    confab.send(ev.id, members_frame(ev.room))
    return
  end
  confab.broadcast(ev.room, frame)
  members_changed(ev.room, ev.id)
end)

-- A leave is announced at once when asked for or when the user has no key. A keyed user that
-- disconnects is kept in the room's list for LEAVE_GRACE seconds (see disconnect): a reconnect
-- within it is silent. A connection replaced by a newer one of the same user leaves quietly
-- where the newer one is.
confab.on("leave", function(ev)
  if member[ev.id] then member[ev.id][ev.room] = nil end
  if typing[ev.id] then typing[ev.id][ev.room] = nil end
  local name = name_of(ev.id)
  if not name then return end
  if ev.reason == "disconnect" then
    local skel = skeleton(name)
    local holder, _, _, _, value = name_claim(skel)
    if holder and holder ~= ev.id and alive(holder) and in_room(holder, ev.room) then return end
    local key = key_of(ev.id)
    if key and holder == ev.id then
      local p = grace_entry(skel, name, key, uid_of(ev.id), value)
      p.rooms[ev.room] = true
      ghosts[ev.room] = ghosts[ev.room] or {}
      ghosts[ev.room][name] = true
      return
    end
    -- The name is free before anyone hears "left" (another node may be asked for it next).
    if holder == ev.id then confab.release("n:" .. skel, value) end
  end
  announce_left(ev.room, name, ev.reason == "leave" and ev.id or nil)
end)

-- A keyed user's name stays reserved (claimed, for its key) through the grace period; another's
-- is released. Not when this node of a cluster is restarting (the drain's 1012): the grace would
-- end with the process, so nobody would ever hear that the user left; the rooms hear it now.
confab.on("disconnect", function(ev)
  local name = name_of(ev.id)
  if claiming[ev.id] then claiming[ev.id] = "gone" end
  local skel = name and skeleton(name)
  local holder, _, _, _, value = name_claim(skel or "")
  if name and holder == ev.id then
    local key = key_of(ev.id)
    if key then
      local p = grace_entry(skel, name, key, uid_of(ev.id), value)
      if ev.code == 1012 and confab.node() ~= 0 then
        grace_over(skel)
      else
        p.timer = confab.after(LEAVE_GRACE, function() grace_over(skel) end)
      end
    else
      confab.release("n:" .. skel, value)
    end
  end
  names[ev.id], member[ev.id], flood[ev.id], typing[ev.id] = nil, nil, nil, nil
  keys[ev.id], uids[ev.id] = nil, nil
end)

-- Many nodes: this node heard of another node's change to a room (a join, leave, rename or a
-- node's death), after the fact. The frames announcing it are exact, but a list this node sent a
-- moment ago may have missed it and reach clients after them: then the list goes again (ordered
-- after the stale one: same node). After the mirror was read again whole (`sync`: the subscriber
-- link was down, the joined/left sent meanwhile are lost for this node's clients) it goes anyway.
confab.on("roster", function(ev)
  -- roster[room].at: when this node last sent the room's list (or a pending timer will send it).
  local r = roster[ev.room]
  if ev.sync or (r and (r.timer or confab.now() - r.at < ROSTER_WINDOW)) then
    members_changed(ev.room)
  end
end)

-- After a hot reload the caches are empty: rebuild them from the core. Grace periods running at
-- the reload are forgotten (their timers went with the old script): those users drop out of the
-- member lists at the next change, without a "left".
-- Redis lost its data (confab.epoch changed, see docs/hooks.md): the ids the clients hold are
-- from the old epoch, so every member of every room here gets its room's history again, with
-- reset (one read and one encode per room).
-- (Every node runs this hook: each tells its own members, those of member[].)
confab.on("epoch", function()
  local here = {}
  for id, rooms in pairs(member) do
    for room in pairs(rooms) do
      here[room] = here[room] or {}
      table.insert(here[room], id)
    end
  end
  for room, ids in pairs(here) do
    confab.replay(room, 0, function(list, complete)
      if not list then return end
      local head = cjson.encode{ type = "history", room = room, complete = complete, reset = true }
      local frame = head:sub(1, -2) .. ',"messages":[' .. table.concat(list, ",") .. "]}"
      for _, id in ipairs(ids) do confab.send(id, frame) end
    end)
  end
end)

confab.on("reload", function()
  for _, id in ipairs(confab.connections()) do
    local name = confab.get(id, "name")
    if name then
      names[id] = name
      keys[id] = confab.get(id, "key")
      uids[id] = confab.get(id, "uid") or id
    end
    local rooms = confab.rooms_of(id)
    if rooms and #rooms > 0 then
      member[id] = {}
      for _, room in ipairs(rooms) do member[id][room] = true end
    end
  end
end)
