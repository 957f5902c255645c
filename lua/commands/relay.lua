-- Run a relay that peers meet through (it only ever forwards ciphertext)
--
-- Configuration: flags, or `--config FILE` with one `key = value` per line (the flag's name
-- without its dashes: `max-rooms = 5000`; `#` starts a comment; flags given on the command line
-- win over the file). `--check` validates and exits. Signals: SIGHUP re-reads the file and
-- applies it without dropping rooms; SIGTERM drains: no new connections, waiting rooms closed,
-- paired rooms get --drain-timeout seconds to finish; a second SIGTERM, or SIGINT (Ctrl-C), stops
-- at once.
local tallow = require "tallow"
local cli = require "tallow.cli"

local spec = {
    usage = "tallow relay [options]",
    summary = "Run a relay: rooms keyed by an opaque id, blind forwarding, limits, and a STUN responder on the same UDP port.",
    options = {
        { "--config", arg = "FILE", help = "read options from FILE (key = value per line; flags win)" },
        { "--check", help = "validate the configuration and exit (0: valid)" },
        { "--listen", arg = "ADDR:PORT", help = "where to listen (TCP, and UDP for STUN) (default 0.0.0.0:4433)" },
        { "--password", arg = "PASS", help = "require this relay password from clients", env = "TALLOW_RELAY_PASSWORD" },
        { "--max-rooms", arg = "N", help = "rooms open at once", shown_default = 10000 },
        { "--room-timeout", arg = "SECONDS", help = "close idle rooms after this long", shown_default = 3600 },
        { "--max-peers", arg = "N", help = "peers per multi-peer room (chat --capacity, send --to-many)", shown_default = 16 },
        { "--max-frame", arg = "BYTES", help = "largest frame forwarded", shown_default = 2097216 },
        { "--max-conns-per-ip", arg = "N", help = "connections from one address (an IPv6 /64 counts as one)", shown_default = 64 },
        { "--max-conns", arg = "N", help = "connections at once" },
        { "--max-rooms-per-ip", arg = "N", help = "rooms created from one address", shown_default = 32 },
        { "--join-rate", arg = "N", help = "room joins per second from one address (an IPv6 /64), bursts of 4N; loopback exempt; 0: no limit", shown_default = 16 },
        { "--join-timeout", arg = "SECONDS", help = "time a connection has to join a room", shown_default = 10 },
        { "--unpaired-timeout", arg = "SECONDS", help = "close a room nobody joined after this long", shown_default = 600 },
        { "--grace", arg = "SECONDS", help = "how long a dropped peer may come back and resume", shown_default = 30 },
        { "--queue-high", arg = "BYTES", help = "per-connection queue before the sender is held back", shown_default = 65536 },
        { "--stun", arg = "on|off", help = "answer STUN Binding requests on the same UDP port", shown_default = "on" },
        { "--stun-port2", arg = "PORT|off", help = "answer STUN on a second UDP port too, so one relay shows a client whether its NAT maps each destination apart (default: the listen port + 1)" },
        { "--splice", arg = "on|off", help = "forward long frames socket to socket with splice()", shown_default = "on" },
        { "--cert", arg = "FILE", help = "serve TLS with this PEM certificate (chain); the listener is then TLS-only: clients use --relay tls://HOST:PORT" },
        { "--key", arg = "FILE", help = "the PEM private key of --cert (SIGHUP re-reads both for new connections)" },
        { "--metrics", arg = "ADDR:PORT", help = "serve Prometheus metrics over HTTP at /metrics" },
        { "--drain-timeout", arg = "SECONDS", help = "on SIGTERM, time paired rooms get to finish", shown_default = 30 },
        { "--log-format", arg = "text|json", help = "log lines as text or one JSON object per line", shown_default = "text" },
        { "--quiet", help = "log only warnings and errors (default: one line per room event)" },
    },
    environment = { { "TALLOW_LOG", "warn, info or debug (default info; warn with --quiet)" } },
    examples = {
        "tallow relay                                   # 0.0.0.0:4433, TCP and STUN on UDP",
        "tallow relay --listen 127.0.0.1:4433 --quiet   # this machine only",
        "tallow relay --listen [::]:443 --password s3cret --max-peers 64",
        "tallow relay --listen [::]:443 --cert fullchain.pem --key privkey.pem   # TLS only",
        "On a server, run it under systemd: examples/tallow-relay.service (tallow-relay(8)).",
    },
}
local opts = cli.parse(spec, arg)

-- keys the command handles itself; every other option goes to the relay service as it is
local LOCAL = { config = true, check = true, quiet = true, ["log-format"] = true }
local KNOWN = {}
for _, o in ipairs(spec.options) do KNOWN[o[1]:gsub("^%-%-", "")] = o end

local function fail(msg)
    io.stderr:write("tallow relay: " .. msg .. "\n")
    os.exit(1)
end

-- Reads a configuration file: { key = value } (keys spelled like the flags), or nil, message.
local function read_config(path)
    local f, err = io.open(path, "r")
    if not f then return nil, "cannot read " .. tostring(err) end
    local out, n = {}, 0
    for line in f:lines() do
        n = n + 1
        line = line:gsub("%s+#.*$", ""):gsub("^#.*$", "")
        if line:match("%S") then
            local k, v = line:match("^%s*([%w_%-]+)%s*=%s*(.-)%s*$")
            if not k then
                f:close()
                return nil, string.format("%s:%d: expected 'key = value'", path, n)
            end
            k = k:gsub("_", "-")
            v = v:gsub('^"(.*)"$', "%1")
            local o = KNOWN[k]
            if not o or k == "config" or k == "check" then
                f:close()
                return nil, string.format("%s:%d: unknown key '%s'", path, n, k)
            end
            if not o.arg then -- a flag: true/false
                if v == "true" or v == "yes" or v == "on" or v == "1" then v = true
                elseif v == "false" or v == "no" or v == "off" or v == "0" then v = false
                else
                    f:close()
                    return nil, string.format("%s:%d: %s takes true or false", path, n, k)
                end
            end
            out[k] = v
        end
    end
    f:close()
    return out
end

-- The effective settings: the file's, then the command line's on top. { key = value }.
local function settings()
    local conf = {}
    if opts.config then
        local c, err = read_config(opts.config)
        if not c then return nil, err end
        conf = c
    end
    for k, o in pairs(KNOWN) do
        local v = opts[(k:gsub("%-", "_"))]
        if v ~= nil and k ~= "config" and k ~= "check" then conf[k] = v end
    end
    conf.listen = conf.listen or "0.0.0.0:4433"
    local lf = conf["log-format"]
    if lf and lf ~= "text" and lf ~= "json" then return nil, "log-format must be text or json" end
    return conf
end

local function service_opts(conf)
    local out = {}
    for k, v in pairs(conf) do
        if not LOCAL[k] then out[k] = tostring(v) end
    end
    return out
end

local function apply_logging(conf)
    if not os.getenv("TALLOW_LOG") then tallow.set_log_level(conf.quiet and "warn" or "info") end
    tallow.set_log_format(conf["log-format"] or "text")
end

local conf, err = settings()
if not conf then fail(err) end

if opts.check then
    local ok, cerr = tallow.service.check("relay", service_opts(conf))
    if not ok then fail("invalid configuration: " .. tostring(cerr)) end
    io.stdout:write("configuration ok" .. (opts.config and (" (" .. opts.config .. ")") or "") .. "\n")
    os.exit(0)
end

apply_logging(conf)
local svc, serr = tallow.service.start("relay", service_opts(conf))
if not svc then fail("cannot start the relay: " .. tostring(serr)) end
local JSON = conf["log-format"] == "json"
-- one line on stderr that scripts wait for (a log event in JSON mode)
local function say(msg)
    if JSON then tallow.log("info", msg) else io.stderr:write(msg .. "\n") end
end
local st0 = svc:stats()
say(string.format("tallow relay listening on %s (TCP; STUN on UDP)%s", conf.listen,
    (st0.metrics_port or 0) > 0 and ("; metrics on http://" .. conf.metrics .. "/metrics") or ""))

local SIGHUP, SIGINT, SIGTERM = 1, 2, 15
local sig
while true do
    sig = svc:wait()
    if sig ~= SIGHUP then break end
    local new, rerr = settings()
    if new then
        local ok
        ok, rerr = svc:reload(service_opts(new))
        if ok then
            apply_logging(new)
            conf = new
        end
    end
    if rerr then tallow.log("warn", "relay: reload failed, configuration unchanged: " .. tostring(rerr)) end
end

-- SIGTERM drains: paired rooms may finish; a second signal, or the deadline, ends it
local left = sig == SIGTERM and svc:drain() or 0
local deadline = tallow.now() + (tonumber(conf["drain-timeout"]) or 30)
while left > 0 do
    local remaining = deadline - tallow.now()
    if remaining <= 0 then break end
    local again = svc:wait(math.min(0.2, remaining))
    if again == SIGINT or again == SIGTERM then break end
    left = svc:stats().rooms or 0
end
local st = svc:stats()
svc:stop()
say(string.format("tallow relay stopped (signal %d); forwarded %d bytes%s", sig, st.bytes_forwarded or 0,
    (st.rooms or 0) > 0 and string.format("; %d rooms still open were closed", st.rooms) or ""))
