-- tallow.wormhole: `tallow send --wormhole` and `tallow receive --wormhole`, for people whose
-- friend uses magic-wormhole (`wormhole`) or wormhole-william. The protocol lives in the wormhole
-- plugin (plugins/wormhole); this is the command side over its Lua face,
-- tallow.plugins.module("wormhole"): the same messages, accept question, --json events,
-- progress line, receive rules and exit codes as tallow's own send and receive.
local tallow = require "tallow"
local ui = require "tallow.ui"
local common = require "tallow.common"
local M = {}

M.options = {
    { "--wormhole", help = "talk to magic-wormhole users (`wormhole`, wormhole-william): their codes and servers" },
    { "--wormhole-relay", arg = "URL", env = "TALLOW_WORMHOLE_RELAY",
      help = "magic-wormhole mailbox server (default ws://relay.magic-wormhole.io:4000/v1)" },
    { "--wormhole-transit", arg = "tcp:HOST:PORT", env = "TALLOW_WORMHOLE_TRANSIT",
      help = "magic-wormhole transit relay (default tcp:transit.magic-wormhole.io:4001)" },
}

-- The plugin's Lua face, loading the plugin if the runner did not.
function M.module()
    local wh = tallow.plugins.module("wormhole")
    if wh then return wh end
    local ok, err = tallow.plugins.load("wormhole")
    if not ok then ui.die("--wormhole needs the wormhole plugin: " .. tostring(err)) end
    return assert(tallow.plugins.module("wormhole"))
end

local function open(opts, code)
    if opts.proxy or opts.tor then ui.die("--wormhole does not go through a proxy (it talks to the mailbox directly)") end
    local w, err, ecode = M.module().open {
        relay = opts.wormhole_relay, transit = opts.wormhole_transit, code = code,
        words = (opts.words and opts.words ~= 3) and opts.words or 2,
        no_p2p = opts.no_p2p and true or tallow.policy.no_p2p(), progress = ui.progress_mode(),
    }
    if not w then ui.die(err, ecode) end
    return w
end

local function pair(w, opts)
    local verifier, err, ecode = w:pair()
    if not verifier then ui.die(err, ecode) end
    ui.event("paired", { path = "wormhole", verify = verifier })
    if opts.verify then ui.say("Verifier: %s", verifier) end
end

function M.send(opts, paths, text)
    if not text and #paths ~= 1 then ui.die("--wormhole sends one file or folder at a time (or --text)") end
    local given = opts.code or os.getenv("TALLOW_CODE")
    local w <close> = open(opts, given ~= "" and given or nil)
    local code = w:code()
    if not given or given == "" then
        ui.say("Wormhole code is: %s", code)
        ui.say("On the other computer run:  wormhole receive %s   (or: tallow receive --wormhole %s)", code, code)
    end
    ui.event("code", { code = code })
    pair(w, opts)
    local res, err, ecode, partial
    if text then res, err, ecode, partial = w:send_text(text) else res, err, ecode, partial = w:send(paths[1]) end
    ui.notices((res or partial or {}).notices)
    if not res then ui.die(err, ecode) end
    if text then
        ui.say("Sent a text of %s.", ui.size(res.bytes))
    else
        ui.say("Sent %d file%s, %s in %.2f s over the %s.", res.files, res.files == 1 and "" or "s",
            ui.size(res.bytes), res.seconds, res.path)
    end
    ui.event("sent", { files = res.files, bytes = res.bytes, wire_bytes = res.wire_bytes, resumed = 0, seconds = res.seconds, path = res.path })
    os.exit(0, true)
end

function M.receive(opts, given)
    local code = given or os.getenv("TALLOW_CODE")
    if not code or code == "" then
        code = ui.ask("Enter the wormhole code: ")
        if not code or code == "" then ui.die("no code given") end
    end
    local w <close> = open(opts, code)
    pair(w, opts)
    local wait = common.offer_timeout()
    local offer, err, ecode = w:offer(wait or 0)
    if not offer and ecode == "TALLOW_ETIMEOUT" then
        ui.die(string.format("the sender sent nothing for %g s after pairing; giving up " ..
            "(TALLOW_OFFER_TIMEOUT sets how long to wait, 0 for no limit)", wait), ecode)
    end
    if not offer then ui.die(err, ecode) end
    local what
    if offer.kind == "text" then
        what = string.format("a text of %s", ui.size(offer.size))
    elseif offer.kind == "file" then
        what = string.format("1 file (%s): %s", ui.size(offer.size), ui.printable(offer.name))
    elseif offer.kind == "directory" then
        what = string.format("a folder of %d file%s (%s): %s/", offer.files, offer.files == 1 and "" or "s",
            ui.size(offer.size), ui.printable(offer.name))
    else
        w:reject("unknown offer")
        ui.die("the sender offered something this side does not know")
    end
    ui.event("offer", { kind = offer.kind == "text" and 1 or 0, bytes = offer.size, count = offer.files or 1 })
    if not opts.yes and not opts.json then
        local answer = ui.ask("Accept " .. what .. "? [y/N] ")
        if not answer or not answer:lower():match("^y") then
            w:reject("transfer rejected")
            ui.die("declined")
        end
    else
        ui.say("Receiving %s", what)
    end
    local res, aerr, acode, partial = w:accept { dest = opts.output, overwrite = opts.overwrite }
    ui.notices((res or partial or {}).notices)
    if not res then ui.die(aerr, acode) end
    if res.text then
        if tallow.loop.isatty(1) then io.stdout:write(ui.printable(res.text)) else io.stdout:write(res.text) end
        if tallow.loop.isatty(1) and not res.text:match("\n$") then io.stdout:write("\n") end
    else
        ui.say("Received %d file%s, %s in %.2f s over the %s into %s.", res.files, res.files == 1 and "" or "s",
            ui.size(res.bytes), res.seconds, res.path, opts.output)
    end
    ui.event("received", { files = res.files, bytes = res.bytes, wire_bytes = res.wire_bytes, resumed = 0, seconds = res.seconds, path = res.path })
    if #(res.notices or {}) > 0 then os.exit(1, true) end
    os.exit(0, true)
end

return M
