-- srv_order.lua (tallow run): tallow.relays' ordering of a DNS-published fleet (SRV records,
-- RFC 2782 priority and weight, then weighted rendezvous hashing of the room), with the
-- resolver replaced by a table so that no network is needed. The real lookup, through dnsmasq
-- in a network namespace, is tests/relayops/dns_fleet.sh.
local tallow = require "tallow"
local relays = require "tallow.relays"

local function check(cond, ...)
    if not cond then
        io.stderr:write("FAIL: " .. string.format(...) .. "\n")
        os.exit(1)
    end
end

local zone = {
    ["_tallow._tcp.example.org"] = {
        { target = "c.example.org.", port = 4433, priority = 10, weight = 10 },
        { target = "a.example.org.", port = 4433, priority = 10, weight = 60 },
        { target = "b.example.org.", port = 4433, priority = 10, weight = 30 },
        { target = "z.example.org.", port = 4433, priority = 10, weight = 0 },
        { target = "backup.example.org.", port = 5000, priority = 20, weight = 5 },
    },
    ["_tallow._tcp.empty.example.org"] = {},
    ["_tallow._tcp.none.example.org"] = { { target = ".", port = 0, priority = 0, weight = 0 } },
    ["_tallow._tcp.v6.example.org"] = { { target = "2001:db8::5", port = 4433, priority = 0, weight = 1 } },
}
local lookups = 0
relays.resolver = function(name)
    lookups = lookups + 1
    local r = zone[name]
    if r == nil then return nil, "no such name", "TALLOW_ENOTFOUND" end
    return r
end

local N = 3000
local words = { "apple", "river", "stone", "maple", "cloud" }
local function code_of(i) return string.format("%d-%s-quiet-lamp", i % 999 + 1, words[i // 999 + 1]) end
local first, count = {}, {}
for i = 1, N do
    local code = code_of(i)
    local order = assert(relays.order("example.org", code))
    check(#order == 5, "5 targets, got %d", #order)
    -- priority 10 first (weight 0 last of it), the priority 20 backup last
    check(order[4] == "z.example.org:4433", "weight 0 not last of its priority: %s", table.concat(order, ","))
    check(order[5] == "backup.example.org:5000", "lower priority not last: %s", table.concat(order, ","))
    -- the same order for the other peer, whatever it wrote (trailing dot, case of spacing, repeats)
    local other = assert(relays.order(" example.org., example.org", code))
    check(table.concat(order, ",") == table.concat(other, ","), "peers disagree for %s", code)
    first[order[1]] = (first[order[1]] or 0) + 1
end
-- weights 60/30/10: shares of first choices in proportion (within a few points)
local share = function(t) return (first[t] or 0) / N end
check(math.abs(share("a.example.org:4433") - 0.6) < 0.04, "a: %.3f", share("a.example.org:4433"))
check(math.abs(share("b.example.org:4433") - 0.3) < 0.04, "b: %.3f", share("b.example.org:4433"))
check(math.abs(share("c.example.org:4433") - 0.1) < 0.03, "c: %.3f", share("c.example.org:4433"))
print(string.format("first choices over %d rooms: a %.3f, b %.3f, c %.3f (weights 60/30/10)", N,
    share("a.example.org:4433"), share("b.example.org:4433"), share("c.example.org:4433")))

-- removing a target moves only the rooms that had it first
local before = {}
for i = 1, N do before[i] = relays.order("example.org", code_of(i))[1] end
table.remove(zone["_tallow._tcp.example.org"], 3) -- b goes away
for i = 1, N do
    local now = relays.order("example.org", code_of(i))[1]
    if before[i] ~= "b.example.org:4433" then
        check(now == before[i], "room %d moved from %s to %s though its relay stayed", i, before[i], now)
    end
end

-- no SRV records, or no such name: the name itself on the default port (as before)
check(relays.order("empty.example.org", "5-apple-river")[1] == "empty.example.org", "no records")
check(relays.order("nosuch.example.org", "5-apple-river")[1] == "nosuch.example.org", "NXDOMAIN")
-- "." : the service is decidedly not offered
local o, err = relays.order("none.example.org", "5-apple-river")
check(o == nil and err:find("no tallow relay"), "'.' not refused: %s", tostring(err))
-- an IPv6 target gets brackets
check(relays.order("v6.example.org", "5-apple-river")[1] == "[2001:db8::5]:4433", "v6 target")
-- HOST:PORT lists keep the old rendezvous order and never ask DNS
lookups = 0
local plain = relays.order("127.0.0.1:1,127.0.0.1:2,localhost", "5-apple-river")
check(#plain == 3 and lookups == 0, "plain list asked DNS (%d lookups)", lookups)
-- mixed: plain entries are priority 0, so they come before priority 10
local mixed = relays.order("example.org,10.0.0.1:4433", "5-apple-river")
check(mixed[1] == "10.0.0.1:4433" and #mixed == 5, "mixed: %s", table.concat(mixed, ","))
-- tls://NAME: the same fleet, every target over TLS; a list may mix schemes
local tls = relays.order("tls://example.org", "5-apple-river")
local plainf = relays.order("example.org", "5-apple-river")
check(#tls == #plainf and #tls >= 4, "tls fleet: %d targets: %s", #tls, table.concat(tls, ","))
for i = 1, #tls do
    check(tls[i] == "tls://" .. plainf[i], "tls fleet target %d: %s (plain %s)", i, tls[i], plainf[i])
end
local mix = relays.order("tls://127.0.0.1:1,127.0.0.1:2", "5-apple-river")
check(#mix == 2, "mixed schemes: %s", table.concat(mix, ","))
check((mix[1] == "tls://127.0.0.1:1") ~= (mix[2] == "tls://127.0.0.1:1"), "mixed: %s", table.concat(mix, ","))
-- a resolver failure other than "no such name" is an error, not a silent fallback
relays.resolver = function() return nil, "no answer", "TALLOW_ETIMEOUT" end
o, err = relays.order("example.org", "5-apple-river")
check(o == nil and err:find("SRV lookup"), "timeout not reported")
-- through a proxy (policy: tighten only, so last), names are never looked up: they would leak
-- to the local resolver
lookups = 0
relays.resolver = function(name)
    lookups = lookups + 1
    return zone[name]
end
tallow.policy.set_proxy("socks5://127.0.0.1:9050")
local proxied = relays.order("example.org", "5-apple-river")
check(lookups == 0 and #proxied == 1 and proxied[1] == "example.org", "SRV lookup through a proxy")
print("srv_order ok")
