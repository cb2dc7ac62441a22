-- The add service of seed 002: the client sends {"A":3,"B":9}, the server answers {"Sum":12}.
--
--   build/confab --script scripts/examples/add.lua --ws-path /add
--
-- Go's ReadJSON fills a struct { A int; B int }: a missing field stays 0 and field names match
-- case-insensitively, as here. Where Go would drop the connection on bad input, this answers
-- {"error": "..."} and keeps it.

local confab = require "confab"
local cjson = require "cjson"

local MAX = 2 ^ 53   -- JSON numbers arrive as doubles: beyond this they are not exact

local function field(obj, name)
  if obj[name] ~= nil then return obj[name] end
  for k, v in pairs(obj) do
    if type(k) == "string" and k:lower() == name:lower() then return v end
  end
  return nil
end

-- An integer operand, 0 when absent, or nil when it is not an exact integer.
local function operand(v)
  if v == nil then return 0 end
  local i = math.type(v) and math.tointeger(v)
  if i and math.abs(i) <= MAX then return i end
  return nil
end

local function reply_error(id, message)
  confab.send(id, cjson.encode{ error = message })
end

confab.on("message", function(ev)
  local ok, req = pcall(cjson.decode, ev.data)
  if not ok or type(req) ~= "table" or not ev.data:find("^%s*{") then
    return reply_error(ev.id, 'send a JSON object like {"A":3,"B":9}')
  end
  local a, b = operand(field(req, "A")), operand(field(req, "B"))
  if not (a and b) then
    return reply_error(ev.id, "A and B must be integers")
  end
  -- Formatted by hand: cjson would print large integers with 14 significant digits.
  confab.send(ev.id, string.format('{"Sum":%d}', a + b))
end)
