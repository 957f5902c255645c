-- test_runtime.lua: the coroutine bridge, timers, spawn, the registry and policy from Lua.
local tallow = require "tallow"

-- sleep yields to the loop and comes back later
local t0 = tallow.now()
tallow.sleep(0.05)
assert(tallow.now() - t0 >= 0.045, "sleep returned early")

-- spawned coroutines interleave with this one through the loop
local order = {}
tallow.spawn(function() tallow.sleep(0.02); order[#order + 1] = "b" end)
tallow.spawn(function() order[#order + 1] = "a" end)
tallow.sleep(0.06)
assert(table.concat(order) == "ab", "spawn order: " .. table.concat(order))

-- task:join waits for the task's function to return, however many times it waited inside;
-- a task already done joins at once; a join with a timeout that passes first says false
local steps = {}
local slow = tallow.spawn(function(a, b)
    for i = 1, 3 do tallow.sleep(0.01); steps[#steps + 1] = a + b + i end
end, 10, 20)
local quick = tallow.spawn(function() steps.quick = true end)
assert(tostring(quick) == "tallow.task (done)" and steps.quick, "a task that never waits is done at once")
assert(quick:join() == true)
assert(#steps == 0, "join must not be needed for the task to start, nor run it early")
assert(slow:join() == true)
assert(table.concat(steps, ",") == "31,32,33", "joined before the task finished: " .. table.concat(steps, ","))
assert(slow:join() == true, "joining twice")
local later = tallow.spawn(function() tallow.sleep(0.2) end)
assert(later:join(0.01) == false, "a join with a timeout returns false while the task runs")
assert(tostring(later) == "tallow.task (running)")
assert(later:join() == true, "joining again after a join timed out")

-- repeating timer runs its function until stopped
local ticks = 0
local timer = tallow.every(0.01, function() ticks = ticks + 1 end)
tallow.sleep(0.08)
timer:stop()
local seen = ticks
tallow.sleep(0.03)
assert(seen >= 3 and ticks == seen, "every: " .. seen .. " then " .. ticks)

-- registry: round trip by name, ids, a decode failure as nil, msg, code
local f = tallow.msg.encode("ChatText", { seq = 7, text = "héllo", from = 2 })
local name, m = tallow.msg.decode(f)
assert(name == "ChatText" and m.seq == 7 and m.text == "héllo" and m.from == 2)
assert(tallow.msg.id("ChatEnd") == 28 and tallow.msg.id("RoomPeerCount") == 34)
local ok, err, code = tallow.msg.decode(f:sub(1, #f - 1))
assert(ok == nil and code == "TALLOW_ETRUNC", tostring(err))
assert(not pcall(tallow.msg.encode, "ChatText", { nosuchfield = 1 }))
assert(#tallow.msg.types() >= 39)

-- policy: tightening works; the harness did not lock, so check tighten only
assert(tallow.policy.no_p2p() == false)
tallow.policy.forbid_p2p()
assert(tallow.policy.no_p2p() == true)

-- a script error in a spawned coroutine is not silent: pcall inside still works across yields
local okp, perr = pcall(function() tallow.sleep(0.001); error("boom") end)
assert(not okp and perr:find("boom"))
print("runtime ok")
