-- Receive what the peer with the same code sends
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local preflight = require "tallow.preflight"
local wormhole = require "tallow.wormhole"

local spec = {
    usage = "tallow receive [options] [CODE]",
    summary = "Receive files, folders or text. The code comes from the argument, TALLOW_CODE, or a prompt.",
    description = "Shows what the sender offers (names, count, size, and which would replace files already\n" ..
        "here) and asks before anything is written. Existing files are never replaced without\n" ..
        "--overwrite: the offer is refused before the question. Without a terminal (cron, CI) there\n" ..
        "is nobody to ask, so pass --yes to accept; --json does not accept by itself.",
    options = cli.with_relay_options(cli.options({
        { "--output", "-o", arg = "DIR", help = "where to put what arrives (created if missing)", default = "." },
        { "--yes", "-y", help = "accept without asking" },
        { "--overwrite", help = "replace existing files of the same name" },
        { "--verify", help = "show a verification string both sides can compare" },
    }, wormhole.options)),
    examples = {
        "tallow receive 7-crossword-rhythm-velvet         # shows the offer, asks, receives here",
        "tallow receive -o ~/Downloads                    # asks for the code (Tab completes words)",
        "TALLOW_CODE=7-crossword-rhythm-velvet tallow receive --yes --json   # scripts, cron",
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
if #args > 1 then ui.usage_error("receive takes one code phrase; got " .. #args .. " arguments (quote nothing, just the code)") end
preflight.destination(opts.output)
if opts.wormhole then wormhole.receive(opts, args[1]) end -- from a magic-wormhole user
local code = common.code_from(args[1], opts)

local s <close> = common.open(opts, code, false)
-- A refusal must reach the sender before this process exits: s:reject waits until the sender,
-- which hangs up when refused, is gone (at most this many seconds).
local REFUSAL_WAIT = 2
local HANGUP_WAIT = 5
-- a paired sender that never offers anything must not hold us until the relay closes the room
local wait = common.offer_timeout()
local name, offer, ecode = s:recv(wait)
if not name and ecode == "TALLOW_ETIMEOUT" then
    ui.die(string.format("the sender sent nothing for %g s after pairing; giving up " ..
        "(TALLOW_OFFER_TIMEOUT sets how long to wait, 0 for no limit)", wait), ecode)
end
if not name then ui.die(offer, ecode) end
if name ~= "FileOffer" then ui.die("the peer sent " .. name .. " instead of an offer") end

local function plural(n, word) return string.format("%d %s%s", n, word, n == 1 and "" or "s") end

local what
if offer.kind == 1 then
    what = string.format("a text of %s", ui.size(offer.total_size))
else
    local m, err = tallow.session.manifest(offer.manifest, 200) -- enough to name the top level
    if not m then
        s:reject(offer, err, REFUSAL_WAIT) -- returns once the sender, told, has hung up
        ui.die("refused the offer: " .. err) -- a malformed or unsafe offer: an error (1), not a "no"
    end
    -- what the sender named: top-level entries, folders marked as such
    local top, shown = {}, 0
    local folders = 0
    for _, e in ipairs(m.entries) do
        if not e.path:find("/", 1, true) then
            if e.dir then folders = folders + 1 end
            shown = shown + 1
            if shown <= 5 then top[#top + 1] = e.path .. (e.dir and "/ (folder)" or "") end
        end
    end
    if shown > 5 then top[#top + 1] = string.format("and %d more", shown - 5) end
    what = string.format("%s (%s%s): %s", plural(m.files, "file"), ui.size(m.bytes),
        m.count > m.files and string.format(", %s", plural(m.count - m.files, "folder")) or "",
        table.concat(top, ", "))
    -- files that are already here: refused before the question unless --overwrite
    local c = tallow.session.conflicts(offer.manifest, opts.output, 5)
    if c and c.existing_count > 0 then
        local names = table.concat(c.existing, ", ") .. (c.existing_count > #c.existing and ", ..." or "")
        if not opts.overwrite then
            s:reject(offer, string.format("%s already exist%s there, and the receiver did not pass --overwrite: %s",
                plural(c.existing_count, "name"), c.existing_count == 1 and "s" or "", names), REFUSAL_WAIT)
            ui.die(string.format("refused the offer before accepting anything: %s already exist%s in %s (%s). " ..
                "Receive into another folder with -o DIR, or pass --overwrite to replace them.",
                plural(c.existing_count, "name"), c.existing_count == 1 and "s" or "", opts.output, names), "DECLINED")
        end
        what = what .. string.format(" — %s would replace existing ones (%s)", plural(c.existing_count, "file"), names)
    end
end
ui.event("offer", { kind = offer.kind, bytes = offer.total_size, count = offer.count })
if not opts.yes then
    -- while the question waits, a sender that cancels or goes away ends it at once
    local asking = true
    tallow.spawn(function()
        while asking do
            local n, m, c = s:recv(0.25)
            if not asking then return end
            if n == "TransferError" then
                io.stderr:write("\n")
                ui.die(m.message or "the sender cancelled", "TALLOW_ECANCELED")
            elseif not n and c ~= "TALLOW_ETIMEOUT" then
                io.stderr:write("\n")
                ui.die("the sender went away before you answered: " .. tostring(m), c)
            end
        end
    end)
    local answer = ui.ask("Accept " .. what .. "? [y/N] ")
    asking = false
    if not answer and not tallow.loop.isatty(0) then
        s:reject(offer, "the receiver could not be asked (no terminal) and did not pass --yes", REFUSAL_WAIT)
        io.stderr:write("\n")
        ui.die("nobody could answer (stdin is not a terminal and ended), so nothing was accepted; " ..
            "pass --yes to accept without being asked", "DECLINED")
    end
    if not answer or not answer:lower():match("^y") then
        s:reject(offer, "declined by the receiver", REFUSAL_WAIT)
        ui.die("declined: nothing was received", "DECLINED")
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
    ui.say("Received %s (%s) into %s in %.2f s, over the %s%s.", plural(res.files, "file"),
        ui.size(res.total), opts.output, res.seconds, res.path == "direct" and "direct path" or res.path,
        res.resumed > 0 and string.format("; %s had already arrived", ui.size(res.resumed)) or "")
end
ui.event("received", { files = res.files, bytes = res.total, wire_bytes = res.wire_bytes, resumed = res.resumed, seconds = res.seconds, path = res.path, transport = s:info().stats })
-- Our completion must reach the sender: should the relay die with it in flight, the session
-- moves to the room's next relay and says it again there. So we go once the sender, which hangs
-- up when it has it, is gone (at most this many seconds; at once in the usual case).
s:wait_closed(HANGUP_WAIT)
