-- Run a relay that peers meet through (it only ever forwards ciphertext)
local tallow = require "tallow"
local cli = require "tallow.cli"

local spec = {
    usage = "tallow relay [options]",
    summary = "Run a relay: rooms keyed by an opaque id, blind forwarding, limits, and a STUN responder on the same UDP port.",
    options = {
        { "--listen", arg = "ADDR:PORT", help = "where to listen (TCP, and UDP for STUN)", default = "0.0.0.0:4433" },
        { "--password", arg = "PASS", help = "require this relay password from clients", env = "TALLOW_RELAY_PASSWORD" },
        { "--max-rooms", arg = "N", help = "rooms open at once", shown_default = 10000 },
        { "--room-timeout", arg = "SECONDS", help = "close idle rooms after this long", shown_default = 3600 },
        { "--max-peers", arg = "N", help = "peers per multi-peer room (chat --capacity, send --to-many)", shown_default = 16 },
        { "--max-frame", arg = "BYTES", help = "largest frame forwarded", shown_default = 2097216 },
        { "--max-conns-per-ip", arg = "N", help = "connections from one address", shown_default = 64 },
        { "--max-rooms-per-ip", arg = "N", help = "rooms created from one address", shown_default = 32 },
        { "--join-timeout", arg = "SECONDS", help = "time a connection has to join a room", shown_default = 10 },
        { "--unpaired-timeout", arg = "SECONDS", help = "close a room nobody joined after this long", shown_default = 600 },
        { "--grace", arg = "SECONDS", help = "how long a dropped peer may come back and resume", shown_default = 30 },
        { "--queue-high", arg = "BYTES", help = "per-connection queue before the sender is held back", shown_default = 65536 },
        { "--stun", arg = "on|off", help = "answer STUN Binding requests on the same UDP port", shown_default = "on" },
        { "--splice", arg = "on|off", help = "forward long frames socket to socket with splice()", shown_default = "on" },
        { "--quiet", help = "log only warnings and errors (default: one line per room event)" },
    },
    environment = { { "TALLOW_LOG", "warn, info or debug (default info; warn with --quiet)" } },
    examples = {
        "tallow relay                                   # 0.0.0.0:4433, TCP and STUN on UDP",
        "tallow relay --listen 127.0.0.1:4433 --quiet   # this machine only",
        "tallow relay --listen [::]:443 --password s3cret --max-peers 64",
        "On a server, run it under systemd: examples/tallow-relay.service (tallow-relay(8)).",
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
