-- Run a relay that peers meet through (it only ever forwards ciphertext)
local tallow = require "tallow"
local cli = require "tallow.cli"

local spec = {
    usage = "tallow relay [options]",
    summary = "Run a relay: rooms keyed by an opaque id, blind forwarding, limits, and a STUN responder on the same UDP port.",
    options = {
        { "--listen", arg = "ADDR:PORT", help = "where to listen (TCP, and UDP for STUN)", default = "0.0.0.0:4433" },
        { "--password", arg = "PASS", help = "require this relay password from clients", env = "TALLOW_RELAY_PASSWORD" },
        { "--max-rooms", arg = "N", help = "rooms open at once" },
        { "--room-timeout", arg = "SECONDS", help = "close idle rooms after this long" },
        { "--max-peers", arg = "N", help = "peers per room" },
        { "--max-frame", arg = "BYTES", help = "largest frame forwarded" },
        { "--max-conns-per-ip", arg = "N", help = "connections from one address" },
        { "--max-conns", arg = "N", help = "connections at once" },
        { "--max-rooms-per-ip", arg = "N", help = "rooms created from one address" },
        { "--join-timeout", arg = "SECONDS", help = "time a connection has to join a room" },
        { "--unpaired-timeout", arg = "SECONDS", help = "close a room nobody joined after this long" },
        { "--grace", arg = "SECONDS", help = "how long a dropped peer may come back and resume" },
        { "--queue-high", arg = "BYTES", help = "per-connection queue before the sender is held back" },
        { "--quiet", help = "log only warnings and errors (default: one line per room event)" },
    },
}
local opts = cli.parse(spec, arg)

if not os.getenv("TALLOW_LOG") then tallow.set_log_level(opts.quiet and "warn" or "info") end

local svc_opts = {}
for _, o in ipairs(spec.options) do
    if o[1] == "--quiet" then goto continue end
    local k = o[1]:gsub("^%-%-", "")
    local v = opts[(k:gsub("%-", "_"))]
    if v ~= nil then svc_opts[k] = tostring(v) end
    ::continue::
end

local svc, err = tallow.service.start("relay", svc_opts)
if not svc then
    io.stderr:write("tallow: cannot start the relay: " .. tostring(err) .. "\n")
    os.exit(1)
end
io.stderr:write("tallow relay listening on " .. svc_opts.listen .. " (TCP; STUN on UDP)\n")
local sig = svc:wait()
local st = svc:stats()
svc:stop()
io.stderr:write(string.format("tallow relay stopped (signal %d); forwarded %d bytes\n", sig, st.bytes_forwarded or 0))
