-- Receive what the peer with the same code sends
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local wormhole = require "tallow.wormhole"

local spec = {
    usage = "tallow receive [options] [CODE]",
    summary = "Receive files, folders or text. The code comes from the argument, TALLOW_CODE, or a prompt.",
    options = cli.with_relay_options(cli.options({
        { "--output", "-o", arg = "DIR", help = "where to put what arrives", default = "." },
        { "--yes", "-y", help = "accept without asking" },
        { "--overwrite", help = "replace existing files of the same name" },
        { "--verify", help = "show a verification string both sides can compare" },
    }, wormhole.options)),
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
if opts.wormhole then wormhole.receive(opts, args[1]) end -- from a magic-wormhole user
local code = common.code_from(args[1])

local s <close> = common.open(opts, code, false)
-- a paired sender that never offers anything must not hold us until the relay closes the room
local wait = common.offer_timeout()
local name, offer, ecode = s:recv(wait)
if not name and ecode == "TALLOW_ETIMEOUT" then
    ui.die(string.format("the sender sent nothing for %g s after pairing; giving up " ..
        "(TALLOW_OFFER_TIMEOUT sets how long to wait, 0 for no limit)", wait), ecode)
end
if not name then ui.die(offer, ecode) end
if name ~= "FileOffer" then ui.die("the peer sent " .. name .. " instead of an offer") end

local what
if offer.kind == 1 then
    what = string.format("a text of %s", ui.size(offer.total_size))
else
    local m, err = tallow.session.manifest(offer.manifest, 6) -- names of the first few only
    if not m then
        s:reject(offer, err)
        tallow.sleep(0.2) -- let the refusal reach the sender before exiting
        ui.die("refused the offer: " .. err)
    end
    local names = {}
    for i, e in ipairs(m.entries) do
        if i > 5 then names[#names + 1] = "..." break end
        names[#names + 1] = e.path .. (e.dir and "/" or "")
    end
    what = string.format("%d file%s (%s): %s", m.files, m.files == 1 and "" or "s", ui.size(m.bytes),
        table.concat(names, ", "))
end
ui.event("offer", { kind = offer.kind, bytes = offer.total_size, count = offer.count })
if not opts.yes and not opts.json then
    local answer = ui.ask("Accept " .. what .. "? [y/N] ")
    if not answer or not answer:lower():match("^y") then
        s:reject(offer, "declined by the receiver")
        tallow.sleep(0.2)
        ui.die("declined")
    end
else
    ui.say("Receiving %s", what)
end

local res, err, ecode, partial = s:receive_files(offer, { dest = opts.output, overwrite = opts.overwrite, progress = ui.progress_mode() })
ui.notices((res or partial or {}).notices) -- what was refused, and why
if not res then ui.die(err, ecode) end
if res.text then
    if tallow.loop.isatty(1) then io.stdout:write(ui.printable(res.text)) else io.stdout:write(res.text) end
    if tallow.loop.isatty(1) and not res.text:match("\n$") then io.stdout:write("\n") end
else
    ui.say("Received %d file%s, %s in %.2f s over the %s into %s%s.", res.files, res.files == 1 and "" or "s",
        ui.size(res.total), res.seconds, res.path, opts.output,
        res.resumed > 0 and string.format(" (%s resumed)", ui.size(res.resumed)) or "")
end
ui.event("received", { files = res.files, bytes = res.total, wire_bytes = res.wire_bytes, resumed = res.resumed, seconds = res.seconds, path = res.path })
