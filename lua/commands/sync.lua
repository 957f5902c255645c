-- Make a folder on the other side equal to this one, sending only what changed
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local folder = require "tallow.folder"

local spec = {
    usage = "tallow sync [options] DIR   |   tallow sync --receive [options] CODE DIR",
    summary = "One-shot folder sync. The sender prints a code; the other side runs `tallow sync --receive CODE DIR`.",
    description = "The receiver tells the sender what it has (size and mtime of every path); only new and\n" ..
        "changed files travel, and the receiver overwrites its changed copies. Paths are relative to\n" ..
        "DIR on both sides (the sender's folder name is not added). --delete also removes on the\n" ..
        "receiver what the sender no longer has, never outside DIR and never through a symlink.",
    options = cli.with_relay_options(cli.options({
        { "--receive", help = "be the receiving side: CODE DIR" },
        { "--delete", help = "remove on the receiver what the sender no longer has" },
        { "--keep", help = "receiver: never remove anything, even if the sender asks" },
    }, cli.code_options())),
    examples = {
        "tallow sync ~/notes                           # prints a code",
        "tallow sync --receive 7-crossword-rhythm-velvet ~/notes-copy",
        "tallow sync --delete site/                    # the receiver's copy ends up a mirror",
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)

local function plural(n, word) return string.format("%d %s%s", n, word, n == 1 and "" or "s") end

-- ---- receiving side: answer the manifest request, apply removals, take the files
local function receive()
    local code, dir
    if #args == 2 then code, dir = args[1], args[2]
    elseif #args == 1 then dir = args[1]
    else cli.usage_exit(spec) end
    code = common.code_from(code, opts)
    local s <close> = common.open(opts, code, false)
    local report
    -- a paired sender that goes silent must not hold us until the relay closes the room
    local wait = common.offer_timeout()
    local done, rerr, rcode = folder.serve(s, dir, {
        rounds = 1, keep = opts.keep, progress = ui.progress_mode(), timeout = wait,
        on_round = function(r) report = r end,
    })
    if not done and not report and rcode == "TALLOW_ETIMEOUT" then
        ui.die(string.format("the sender sent nothing for %g s; giving up " ..
            "(TALLOW_OFFER_TIMEOUT sets how long to wait, 0 for no limit)", wait), rcode)
    end
    if not done and not report then ui.die(rerr, rcode) end
    ui.notices(report.notices)
    for _, n in ipairs(report.errors) do io.stderr:write("tallow: " .. n .. "\n") end
    if report.error then ui.die(report.error, report.code) end
    ui.say("received %s (%s in %.2f s) into %s", folder.describe(report.changed, report.new, report.deleted),
        ui.size(report.bytes), report.seconds, dir)
    ui.event("synced", { side = "receiver", changed = report.changed, new = report.new, deleted = report.deleted,
        files = report.files, wire_bytes = report.bytes, seconds = report.seconds })
    if report.refused > 0 or #report.errors > 0 then os.exit(1, true) end
end

-- ---- sending side: ask what the receiver has, remove and send the difference
local function send()
    if #args ~= 1 then cli.usage_exit(spec) end
    local dir = args[1]
    local mine = folder.scan(dir)
    if not mine then ui.die("cannot read " .. dir .. ": not a folder") end
    require("tallow.preflight").sources({ dir }) -- what cannot be read is named before the code
    local code = common.new_code(opts)
    common.show_code(opts, code, "tallow sync --receive", " DIR")
    local s <close> = common.open(opts, code, true)
    local t0 = tallow.now()
    local plan, res, ecode = folder.full_round(s, dir, 1, { delete = opts.delete, progress = ui.progress_mode() })
    if not plan then ui.die(res, ecode) end
    for _, w in ipairs(plan.warnings or {}) do io.stderr:write("tallow: " .. w .. "\n") end
    local secs = tallow.now() - t0
    ui.say("sent %s (%s over the %s in %.2f s)", folder.describe(plan.changed, plan.new, plan.deleted),
        ui.size(res.wire_bytes), res.path, secs)
    ui.event("synced", { side = "sender", changed = plan.changed, new = plan.new, deleted = plan.deleted,
        files = res.files, wire_bytes = res.wire_bytes, seconds = secs, path = res.path })
end

if opts.receive then receive() else send() end
