-- tallow.common: steps the stock commands share — load extra plugins, find the code phrase
-- (argument, TALLOW_CODE, or a prompt, so it need not appear in `ps`), open the session (at the
-- room's relay when several are listed: tallow.relays).
local tallow = require "tallow"
local ui = require "tallow.ui"
local relays = require "tallow.relays"
local preflight = require "tallow.preflight"
local M = {}

local function relay_default()
    for _, o in ipairs(require("tallow.cli").relay_options) do
        if o[1] == "--relay" then return o.default end
    end
end

function M.load_plugins(opts)
    for _, p in ipairs(opts.plugin or {}) do
        local ok, err = tallow.plugins.load(p)
        if not ok then ui.die(err) end
    end
end

-- The code for the side that did not make it: from the argument, the environment or a prompt.
function M.code_from(given, opts)
    if opts then M.check_relay(opts) end
    local code = given or os.getenv("TALLOW_CODE")
    if not code or code == "" then
        local why, ecode
        code, why, ecode = ui.ask_code("Enter the code phrase (Tab completes words): ")
        if ecode == "TALLOW_ECANCELED" then os.exit(130) end
        if not code or code == "" then
            ui.usage_error("no code phrase given: pass it as an argument or in TALLOW_CODE")
        end
    end
    local norm, err = tallow.code.normalize(code)
    if not norm then ui.die(err) end
    return norm
end

-- The code for the side that makes it: --code, TALLOW_CODE, or a fresh one.
function M.new_code(opts)
    M.check_relay(opts)
    local code = opts.code or os.getenv("TALLOW_CODE")
    if code and code ~= "" then
        local norm, err = tallow.code.normalize(code)
        if not norm then ui.die(err) end
        return norm
    end
    local words = opts.words or 3
    if words < 2 or words > 8 then
        ui.die(string.format("--words %s: a code needs between 2 and 8 secret words " ..
            "(one word is one guess in 2048: too easy)", tostring(words)))
    end
    return tallow.code.generate(words)
end

-- A room this side made for `capacity` peers (chat --capacity, send --to-many): waits (up to
-- 10 s) until the relay took it, so that a capacity it refuses is said before the code is shown.
-- Returns a session that was accepted meanwhile (with its peer index), if any.
function M.room_taken(room, capacity, option)
    local deadline = tallow.now() + 10
    while room:info().peers == 0 and tallow.now() < deadline do
        local s, a, c = room:accept(0.05)
        if s then return s, a end
        if c ~= "TALLOW_ETIMEOUT" then
            if tostring(a):find("capacity") then
                a = string.format("%s: the relay allows fewer people in a room than %s " ..
                    "(a stock relay allows 16; its --max-peers raises that)", a, option)
            end
            ui.die(a, c)
        end
    end
end

-- Pre-flight: the relay (each listed one, or the proxy) answers, before a code is shown or asked.
function M.check_relay(opts)
    if M.relay_checked then return end
    M.relay_checked = true
    local list = relays.parse(relays.configured(opts, relay_default()))
    preflight.relay(opts, #list > 0 and list or { opts.relay })
end

-- Prints the code and the command the other side runs (with --relay when it is not the default,
-- from the option or TALLOW_RELAY: the other side needs the same relay and may not have that
-- variable set).
function M.show_code(opts, code, command, tail)
    ui.event("code", { code = code })
    if opts.code or os.getenv("TALLOW_CODE") then return end
    local relay = ""
    if opts.relay and opts.relay ~= relay_default() then
        relay = " --relay " .. opts.relay
    end
    ui.say("Code is: %s", code)
    ui.say("On the other computer run:  %s%s %s%s", command, relay, code, tail or "")
end

-- How long the direct-path attempt may take (TALLOW_P2P_TIMEOUT seconds, default 5).
function M.p2p_timeout()
    return tonumber(os.getenv("TALLOW_P2P_TIMEOUT") or "") or 5
end

-- How long a receiver waits for the sender's first message after pairing: TALLOW_OFFER_TIMEOUT
-- seconds, default 120 (a sender scans its files before it offers them); 0 or less: no limit.
-- Returns nil for no limit.
function M.offer_timeout()
    local t = tonumber(os.getenv("TALLOW_OFFER_TIMEOUT") or "") or 120
    return t > 0 and t or nil
end

function M.open(opts, code, initiator, capacity)
    -- several relays: relays.try sets `relay` to each of the room's relays in turn (tallow.relays)
    local relay_list = M.relays_for(opts, code)
    ui.event("connecting", { relay = relay_list[1] })
    local waiting -- not a blank screen while the sender has not come yet
    if not initiator then
        waiting = tallow.every(1, function()
            waiting:stop()
            ui.say("Waiting for the sender…")
            ui.event("waiting", {})
        end)
    end
    local s, err, ecode = relays.try(relay_list, tallow.session.open, M.on_next_relay) {
        code = code,
        relay = opts.relay,
        password = opts.relay_password,
        transport = opts.transport,
        initiator = initiator,
        capacity = capacity,
        stun = opts.stun,
        p2p_timeout = M.p2p_timeout(),
    }
    if waiting then waiting:stop() end
    if not s then ui.die(err, ecode) end
    local info = s:info()
    ui.event("paired", { path = info.path, verify = info.verify })
    if opts.verify then
        ui.say("Verification: %s  (the other side must show the same)", info.verify)
    end
    -- The direct attempt (unless --no-p2p) runs in the core after the handshake and is bounded
    -- by its own timeout; waiting for it here means a transfer starts on the path it will keep
    -- instead of pushing its first megabytes through the relay. Sends would move by themselves
    -- mid-way otherwise.
    local path = s:direct()
    local pi = s:info()
    ui.event("path", { path = path, direct_failed = pi.direct_failed, candidates = pi.candidates,
                       direct_ms = pi.direct_ms })
    return s
end


-- The relays a room tries, best first: the one --relay / TALLOW_RELAY names, or, when the list
-- (or TALLOW_RELAYS) has several, all of them in the room's rendezvous-hashing order.
function M.relays_for(opts, code)
    local list = relays.configured(opts, relay_default())
    local parsed = relays.parse(list)
    if #parsed <= 1 and not relays.needs_dns(parsed) then return { parsed[1] or list } end
    local order, err = relays.order(parsed, code)
    if not order then ui.die(err) end
    return order
end

-- Called when a listed relay cannot be reached and the next one is tried.
function M.on_next_relay(relay, err)
    ui.event("connecting", { relay = relay, previous_error = err })
end

return M
