-- hrw.lua (tallow run): properties of tallow.relays' rendezvous hashing, without any network.
local tallow = require "tallow"
local relays = require "tallow.relays"

local function check(cond, ...)
    if not cond then
        io.stderr:write("FAIL: " .. string.format(...) .. "\n")
        os.exit(1)
    end
end

local four = { "10.0.0.1:4433", "10.0.0.2:4433", "relay.example:443", "[2001:db8::1]:4433" }
local words = { "apple", "river", "stone", "maple", "cloud" }
local N = 5000
local codes = {}
for i = 1, N do
    codes[i] = string.format("%d-%s-quiet-lamp", i % 999 + 1, words[(i // 999) % #words + 1])
end

-- the list's order, spacing and repeats do not matter; both peers reach the same choice
check(#relays.parse(" b:2, a:1,b:2 ,") == 2, "parse")
local rev = { four[4], four[3], four[2], four[1], four[2] }
for i = 1, 200 do
    check(relays.pick(four, codes[i]) == relays.pick(table.concat(rev, " , "), codes[i]),
        "order-dependent choice for %s", codes[i])
end
-- normalisation: the same code spelled differently picks the same relay
check(relays.pick(four, "7-Apple-River-Stone") == relays.pick(four, "7 apple river stone"), "normalisation")
-- malformed code: nil, message
check(relays.pick(four, "not a code") == nil, "malformed code accepted")

-- balance: each of 4 relays gets a quarter of the rooms, give or take
local count, first = {}, {}
for _, r in ipairs(four) do count[r] = 0 end
for i, c in ipairs(codes) do
    first[i] = relays.pick(four, c)
    count[first[i]] = count[first[i]] + 1
end
for r, n in pairs(count) do
    check(n > N / 4 * 0.85 and n < N / 4 * 1.15, "unbalanced: %s has %d of %d rooms", r, n, N)
end

-- adding a fifth relay moves only the rooms that now pick it (about a fifth of them)
local five = { four[1], four[2], four[3], four[4], "10.0.0.9:4433" }
local moved = 0
for i, c in ipairs(codes) do
    local now = relays.pick(five, c)
    if now ~= first[i] then
        check(now == five[5], "room %s moved between old relays", c)
        moved = moved + 1
    end
end
check(moved > N / 5 * 0.8 and moved < N / 5 * 1.2, "moved %d of %d rooms", moved, N)

-- removing a relay moves only its own rooms, each to its second choice
for i, c in ipairs(codes) do
    local order = relays.order(four, c)
    local without = { }
    for _, r in ipairs(four) do if r ~= four[1] then without[#without + 1] = r end end
    local now = relays.pick(without, c)
    if first[i] ~= four[1] then check(now == first[i], "room %s moved off a surviving relay", c)
    else check(now == order[2], "room %s did not go to its second choice", c) end
end

local parts = {}
for _, r in ipairs(four) do parts[#parts + 1] = string.format("%s %d", r, count[r]) end
print(string.format("hrw ok: %d rooms over 4 relays (%s); a 5th relay took %d", N, table.concat(parts, ", "), moved))
