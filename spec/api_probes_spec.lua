-- The testing kit's fake against the record of the real core's outcomes: every probe of
-- spec/support/api_probes.lua, run in the fake, must give what the core gave when
-- spec/support/api_probes.expected.json was recorded (spec/integration/test_api_probes.py holds
-- the core to the same record and compares the two directly).
local api_probes_fake = require "api_probes_fake"
local cjson = require "cjson"

local function read_expected()
  local f = assert(io.open("spec/support/api_probes.expected.json"))
  local list = cjson.decode(f:read("a"))
  f:close()
  return list
end

describe("the API probes in the fake", function()
  local outcomes, fake = api_probes_fake.run()
  local expected = read_expected()
  local got = {}
  for _, p in ipairs(outcomes) do got[p.name] = p.got end

  it("run every recorded probe, and no other", function()
    local names, recorded = {}, {}
    for _, p in ipairs(outcomes) do names[#names + 1] = p.name end
    for _, e in ipairs(expected) do recorded[#recorded + 1] = e[1] end
    assert.same(recorded, names)
    assert.is_true(#names > 100)
  end)

  it("raise no error outside the probes but the timer probe's deliberate one", function()
    assert.equal(1, #fake.errors)
    assert.equal("timer", fake.errors[1].event)
    assert.matches("probe: deliberate", fake.errors[1].message, 1, true)
  end)

  for _, e in ipairs(expected) do
    local name, outcome = e[1], e[2]
    it("give the core's outcome: " .. name, function()
      assert.equal(outcome, got[name])
    end)
  end
end)
