-- tallow.common: steps the stock commands share — load extra plugins, find the code phrase
-- (argument, TALLOW_CODE, or a prompt, so it need not appear in `ps`), open the session (at the
-- room's relay when several are listed: tallow.relays).
local tallow = require "tallow"
local ui = require "tallow.ui"
local relays = require "tallow.relays"
local M = {}

function M.load_plugins(opts)
    for _, p in ipairs(opts.plugin or {}) do
        local ok, err = tallow.plugins.load(p)
        if not ok then ui.die(err) end
    end
end

-- The code for the side that did not make it: from the argument, the environment or a prompt.
function M.code_from(given)
    local code = given or os.getenv("TALLOW_CODE")
    if not code or code == "" then
        code = ui.ask("Enter the code phrase: ")
        if not code or code == "" then ui.die("no code phrase given") end
    end
    local norm, err = tallow.code.normalize(code)
    if not norm then ui.die(err) end
    return norm
end

-- The code for the side that makes it: --code, TALLOW_CODE, or a fresh one.
function M.new_code(opts)
    local code = opts.code or os.getenv("TALLOW_CODE")
    if code and code ~= "" then
        local norm, err = tallow.code.normalize(code)
        if not norm then ui.die(err) end
        return norm
    end
    return tallow.code.generate(opts.words or 3)
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

local function relay_default()
    for _, o in ipairs(require("tallow.cli").relay_options) do
        if o[1] == "--relay" then return o.default end
    end
end

-- The relays a room tries, best first: the one --relay / TALLOW_RELAY names, or, when the list
-- (or TALLOW_RELAYS) has several, all of them in the room's rendezvous-hashing order.
function M.relays_for(opts, code)
    local list = relays.configured(opts, relay_default())
    local parsed = relays.parse(list)
    if #parsed <= 1 then return { parsed[1] or list } end
    local order, err = relays.order(parsed, code)
    if not order then ui.die(err) end
    return order
end

-- Called when a listed relay cannot be reached and the next one is tried.
function M.on_next_relay(relay, err)
    ui.event("connecting", { relay = relay, previous_error = err })
end

return M
