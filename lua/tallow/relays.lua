-- tallow.relays: more than one relay. `--relay a:1,b:2,c:3` (or TALLOW_RELAYS) lists relays that
-- run side by side with no shared state; both peers choose the relay for a room by rendezvous
-- (highest-random-weight) hashing of the room id over the list, so they meet on the same relay
-- without asking anyone, whatever order each side wrote the list in. Adding or removing a relay
-- moves only the rooms that hashed to it.
--
--   local relays = require "tallow.relays"
--   relays.parse("b:2, a:1,b:2")            --> { "a:1", "b:2" }   (trimmed, unique, sorted)
--   relays.order("a:1,b:2", code)           --> { "b:2", "a:1" }, room id (hex)   best first
--   relays.pick("a:1,b:2", code)            --> "b:2"
--
-- A room's weight on a relay is BLAKE2b-256(relay address) keyed with the room id (which the
-- relays see anyway; the code itself never leaves the machine).
local tallow = require "tallow"
local M = {}

function M.parse(list)
    local seen, out = {}, {}
    if type(list) == "table" then list = table.concat(list, ",") end
    for item in tostring(list or ""):gmatch("[^,%s]+") do
        if not seen[item] then
            seen[item] = true
            out[#out + 1] = item
        end
    end
    table.sort(out)
    return out
end

-- Relays of `list` in the order this room tries them: highest weight first.
function M.order(list, code)
    local relays = M.parse(list)
    local room, err, ecode = tallow.code.room_id(code)
    if not room then return nil, err, ecode end
    local w = {}
    for _, r in ipairs(relays) do w[r] = tallow.code.hash(r, room) end
    -- equal-length hex strings compare like the numbers they spell; ties (never in practice)
    -- fall back to the address so both sides still agree
    table.sort(relays, function(a, b)
        if w[a] ~= w[b] then return w[a] > w[b] end
        return a < b
    end)
    return relays, room
end

function M.pick(list, code)
    local relays, room = M.order(list, code)
    if not relays then return nil, room end
    return relays[1], room
end

-- The relay list a command was given: --relay (or TALLOW_RELAY), unless it was left at its
-- default and TALLOW_RELAYS is set.
function M.configured(opts, default)
    local many = os.getenv("TALLOW_RELAYS")
    local one = os.getenv("TALLOW_RELAY")
    if many and many ~= "" and (opts.relay == nil or opts.relay == (one ~= "" and one or default)) then
        return many
    end
    return opts.relay
end

-- Errors after which the next relay in the room's order is worth trying: the relay itself could
-- not be reached (the relay transport reports every failed connection attempt, timeouts included,
-- as ECONNREFUSED, and a name that does not resolve as TALLOW_ENOTFOUND). Both peers see the same
-- dead relay and so move on to the same next one. Never TALLOW_ETIMEOUT: that is "no peer came",
-- and the peer may well be waiting on this relay.
M.unreachable = {
    ECONNREFUSED = true, EHOSTUNREACH = true, ENETUNREACH = true, EADDRNOTAVAIL = true,
    TALLOW_ENOTFOUND = true,
}

-- relays.try(list, open [, on_next]) returns a function that takes open's parameter table and
-- calls open with `relay` set to each relay of `list` in turn, until one is reached (any other
-- failure, or success, ends it): `relays.try(order, tallow.session.open) { code = ..., ... }`.
function M.try(list, open, on_next)
    return function(params)
        local res
        for i, relay in ipairs(list) do
            params.relay = relay
            res = table.pack(open(params))
            if res[1] or not M.unreachable[res[3]] or i == #list then break end
            if on_next then on_next(list[i + 1], res[2]) end
        end
        return table.unpack(res, 1, res.n)
    end
end

return M
