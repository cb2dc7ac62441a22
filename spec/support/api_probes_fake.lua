-- api_probes_fake: runs the API probes (spec/support/api_probes.lua) against the testing kit's
-- fake with the same choreography as the integration test runs them against the real server,
-- and with the same limits (the script's CONFIG). Used by spec/api_probes_spec.lua, and by
-- spec/integration/test_api_probes.py to compare the fake's outcomes with the core's:
--
--   lua5.4 spec/support/api_probes_fake.lua     -- prints {"probes": [{name, got}, ...]}
local confab_fake = require "confab_fake"
local cjson = require "cjson"

local M = {}

M.PATH = "spec/support/api_probes.lua"

--- Runs the probes; returns the list of { name=, got= } and the fake.
function M.run(path)
  path = path or M.PATH
  local cfg = confab_fake.new():load(path).script.config
  local fake = confab_fake.new{ history = cfg.history, memory = cfg.script_memory,
                                attr_memory = cfg.attr_memory }:load(path)
  fake:connect{ path = "/ws", query = "probe-connect" }
  local victim = assert(fake:connect())
  fake:message(victim, "victim")
  local gone = assert(fake:connect())
  fake:message(gone, "gone")
  fake:disconnect(gone, 1000, "probe gone")
  local me = assert(fake:connect())
  fake:message(me, "run")
  fake:advance(0.01) -- the timer probes
  for _, text in ipairs(fake:sent(me)) do
    if text:sub(1, 10) == '{"probes":' then return cjson.decode(text).probes, fake end
  end
  error("api_probes_fake: the probe script sent no outcome; hook errors: "
        .. cjson.encode(fake.errors))
end

if arg and arg[0] and arg[0]:match("api_probes_fake%.lua$") then
  io.write(cjson.encode({ probes = (M.run()) }), "\n")
end

return M
