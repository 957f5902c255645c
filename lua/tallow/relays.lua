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

-- ---- a fleet published in DNS: `--relay example.org` (a name with no port)
--
-- A name with no port is looked up as SRV `_tallow._tcp.NAME` (tallow.dns: the system resolver).
-- Its targets are ordered as RFC 2782 says for priority (lowest first; a lower priority group is
-- tried only after every target of the one before) and, within a priority, by weighted
-- rendezvous hashing of the room: target t scores -weight(t) / ln(u), u in (0,1) the BLAKE2b of
-- "target:port" keyed with the room id, highest first. That spreads rooms over a priority's
-- targets in proportion to their weights (RFC 2782's random choice, made deterministic), so both
-- peers derive the same order without talking, and adding or removing a target moves only the
-- rooms that hashed to it. Weight 0 targets come after the others of their priority. A name
-- without SRV records (or an IP literal, or localhost) is a plain host on the default port.
-- Plain HOST:PORT entries in the same list count as priority 0, weight 1. `tls://NAME` looks up
-- the same records and reaches every target over TLS (tls://target:port). Through a proxy no
-- SRV lookup is made (the name would leak to the local resolver): names are plain hosts there.
M.srv_prefix = "_tallow._tcp."
M.resolver = function(name) return tallow.dns.srv(name) end

local function has_port(item)
    return item:match("^%[.+%]:%d+$") ~= nil or item:match("^[^:]+:%d+$") ~= nil
end

local function is_literal(item)
    return item == "localhost" or item:find(":", 1, true) ~= nil or item:match("^%[") ~= nil
        or item:match("^%d+%.%d+%.%d+%.%d+$") ~= nil
end

-- The targets a list stands for: { {addr = "host:port", priority = P, weight = W}, ... }, or nil,
-- message, code when a name's SRV records say the service is not offered there ("."), or the
-- resolver gave no answer.
function M.targets(list)
    local out, seen = {}, {}
    local function add(addr, prio, weight)
        if seen[addr] then return end
        seen[addr] = true
        out[#out + 1] = { addr = addr, priority = prio, weight = weight }
    end
    for _, entry in ipairs(M.parse(list)) do
        -- a scheme (tls://NAME) applies to every target the name stands for
        local scheme, item = entry:match("^(%a+://)(.*)$")
        if not scheme then scheme, item = "", entry end
        local function add_s(addr, prio, weight) add(scheme .. addr, prio, weight) end
        -- through a proxy (--proxy, --tor) no name is looked up here: that would leak it to DNS
        if has_port(item) or is_literal(item) or tallow.policy.proxy() then
            add_s(item, 0, 1)
        else
            local name = item:gsub("%.$", "")
            local recs, err, ecode = M.resolver(M.srv_prefix .. name)
            if not recs and ecode ~= "TALLOW_ENOTFOUND" then
                return nil, "relay " .. item .. ": SRV lookup of " .. M.srv_prefix .. name .. ": " .. tostring(err), ecode
            end
            if not recs or #recs == 0 then
                add_s(item, 0, 1) -- no fleet published: the host itself, on the default port
            elseif #recs == 1 and recs[1].target == "." then
                return nil, "relay " .. item .. ": DNS says no tallow relay is offered there", "TALLOW_ENOTFOUND"
            else
                for _, r in ipairs(recs) do
                    if r.target ~= "." then
                        local host = r.target:gsub("%.$", "")
                        if host:find(":", 1, true) then host = "[" .. host .. "]" end
                        add_s(host .. ":" .. r.port, r.priority, r.weight)
                    end
                end
            end
        end
    end
    return out
end

-- u in (0,1) from the first 52 bits of a hex hash (a double holds them exactly)
local function unit(hex)
    return (tonumber(hex:sub(1, 13), 16) + 0.5) / 2 ^ 52
end

-- Orders targets (from M.targets) for a room id (hex): priority, then weighted rendezvous.
function M.order_targets(targets, room)
    local score = {}
    for _, t in ipairs(targets) do
        local w = t.weight > 0 and t.weight or 1e-9
        score[t] = -w / math.log(unit(tallow.code.hash(t.addr, room)))
    end
    table.sort(targets, function(a, b)
        if a.priority ~= b.priority then return a.priority < b.priority end
        if (a.weight > 0) ~= (b.weight > 0) then return a.weight > 0 end
        if score[a] ~= score[b] then return score[a] > score[b] end
        return a.addr < b.addr
    end)
    local out = {}
    for i, t in ipairs(targets) do out[i] = t.addr end
    return out
end

-- 1 if the list names something to look up in DNS (a name with no port).
function M.needs_dns(list)
    for _, entry in ipairs(M.parse(list)) do
        local item = entry:gsub("^%a+://", "")
        if not has_port(item) and not is_literal(item) then return true end
    end
    return false
end

-- Relays of `list` in the order this room tries them: highest weight first.
function M.order(list, code)
    local relays = M.parse(list)
    local room, err, ecode = tallow.code.room_id(code)
    if not room then return nil, err, ecode end
    if M.needs_dns(relays) then
        local targets, terr, tcode = M.targets(relays)
        if not targets then return nil, terr, tcode end
        return M.order_targets(targets, room), room
    end
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
-- A relay that drains (SIGTERM) closes the rooms still waiting with this reason: the peer waiting
-- there moves on like from an unreachable relay (the other finds the listener closed).
M.shutting_down = "relay shutting down"

M.unreachable = {
    ECONNREFUSED = true, EHOSTUNREACH = true, ENETUNREACH = true, EADDRNOTAVAIL = true,
    TALLOW_ENOTFOUND = true,
}

-- The relays a room moves to if `list[i]` dies after pairing: the rest of its order, then the
-- ones before it (unreachable at the start, perhaps back since). "a:1,b:2" or nil.
function M.failover(list, i)
    local out = {}
    for j = i + 1, #list do out[#out + 1] = list[j] end
    for j = 1, i - 1 do out[#out + 1] = list[j] end
    return #out > 0 and table.concat(out, ",") or nil
end

-- relays.try(list, open [, on_next]) returns a function that takes open's parameter table and
-- calls open with `relay` set to each relay of `list` in turn, until one is reached (any other
-- failure, or success, ends it): `relays.try(order, tallow.session.open) { code = ..., ... }`.
-- `failover` is set to the others (M.failover): a pair survives its relay's death mid-way.
function M.try(list, open, on_next)
    return function(params)
        local res
        for i, relay in ipairs(list) do
            params.relay = relay
            params.failover = M.failover(list, i)
            res = table.pack(open(params))
            local draining = res[3] == "TALLOW_ERELAY" and tostring(res[2]):find(M.shutting_down, 1, true)
            if res[1] or not (M.unreachable[res[3]] or draining) or i == #list then break end
            if on_next then on_next(list[i + 1], res[2]) end
        end
        return table.unpack(res, 1, res.n)
    end
end

return M
