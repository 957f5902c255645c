-- nightly-sync.lua: a one-shot folder sync for cron, on either side.
--
--   # sender (the machine with the data), e.g. 02:00 every night:
--   TALLOW_CODE=42-nightly-backup-phrase TALLOW_RELAY=relay.example:4433 \
--       tallow run nightly-sync.lua --delete /srv/data
--   # receiver (the backup machine), the same minute:
--   TALLOW_CODE=42-nightly-backup-phrase TALLOW_RELAY=relay.example:4433 \
--       tallow run nightly-sync.lua --receive /backup/data
--
-- Both sides use a fixed code from the environment (never on the command line, so not in `ps`).
-- The other side has --wait minutes to show up (a relay that is down is tried every 30 s).
-- One line per run goes to stdout (cron mails it), with a timestamp and the counts; exit status
-- 0 on success, 1 on failure, 3 when the peer never came. It is the sync protocol of `tallow sync` (tallow.folder),
-- so either side may also be the stock command.
local tallow = require "tallow"
local cli = require "tallow.cli"
local common = require "tallow.common"
local folder = require "tallow.folder"

local spec = {
    usage = "tallow run nightly-sync.lua [--receive] [--delete] DIR",
    summary = "One-shot folder sync for cron: fixed code from TALLOW_CODE, bounded wait, one log line.",
    options = cli.with_relay_options {
        { "--receive", help = "be the mirror" },
        { "--delete", help = "sender: remove on the mirror what is gone here" },
        { "--keep", help = "receiver: never remove anything" },
        { "--wait", arg = "MINUTES", number = true, help = "how long to wait for the other side", default = 10 },
    },
}
local opts, args = cli.parse(spec, arg)
common.load_plugins(opts)
local dir = args[1]
local code = os.getenv("TALLOW_CODE")
if not dir or not code or code == "" then
    io.stderr:write(cli.usage(spec) .. "\n(TALLOW_CODE must be set)\n")
    os.exit(2)
end
code = assert(tallow.code.normalize(code))

local function log(fmt, ...)
    io.stdout:write(os.date("%Y-%m-%d %H:%M:%S ") .. string.format(fmt, ...) .. "\n")
    io.stdout:flush()
end

-- step 1: meet the other side. Opening waits for the peer as long as it takes, so a watchdog
-- timer ends the run when --wait is over; a relay that is down is tried again every 30 s.
local s, err
local deadline = tallow.now() + opts.wait * 60
local watchdog = tallow.every(0.5, function()
    if not s and tallow.now() >= deadline then
        log("sync of %s: the other side did not come within %g min (%s)", dir, opts.wait, tostring(err or "no peer"))
        os.exit(3)
    end
end)
while not s do
    s, err = tallow.session.open {
        code = code, relay = opts.relay, password = opts.relay_password,
        transport = opts.transport, initiator = not opts.receive,
    }
    if not s then tallow.sleep(30) end
end
watchdog:stop()

-- step 2: one round
local t0 = tallow.now()
if opts.receive then
    local report
    local ok, rerr = folder.serve(s, dir, { rounds = 1, keep = opts.keep, on_round = function(r) report = r end })
    s:close()
    if not report then
        log("sync into %s failed: %s", dir, tostring(rerr))
        os.exit(1)
    end
    for _, n in ipairs(report.notices) do log("  %s", n) end
    for _, n in ipairs(report.errors) do log("  %s", n) end
    log("sync into %s: received %s in %.1f s%s", dir, folder.describe(report.changed, report.new, report.deleted),
        tallow.now() - t0, report.error and (" — FAILED: " .. report.error) or "")
    os.exit((report.error or report.refused > 0 or #report.errors > 0) and 1 or 0)
else
    local plan, res = folder.full_round(s, dir, 1, { delete = opts.delete })
    s:close()
    if not plan then
        log("sync of %s failed: %s", dir, tostring(res))
        os.exit(1)
    end
    log("sync of %s: sent %s in %.1f s", dir, folder.describe(plan.changed, plan.new, plan.deleted), tallow.now() - t0)
end
