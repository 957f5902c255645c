-- Send files, folders or text to the peer who has the code
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local preflight = require "tallow.preflight"
local wormhole = require "tallow.wormhole"

local spec = {
    usage = "tallow send [options] FILE|DIR...   |   tallow send --text TEXT|-",
    summary = "Send files, folders or text. Prints a code phrase; the other side runs `tallow receive CODE`.",
    options = cli.with_relay_options(cli.options({
        { "--text", arg = "TEXT", help = "send TEXT (or '-' for stdin) instead of files" },
        { "--to-many", arg = "N", number = true, int = true, min = 1, max = 1023, help = "send to N receivers at once (each runs `tallow receive CODE`)" },
    }, cli.code_options(), wormhole.options)),
    description = "Everything named is checked before the code is shown: a path that does not exist, a\n" ..
        "symbolic link given as an argument (links are never followed), or anything inside a folder\n" ..
        "that cannot be read stops here, by name. The relay must answer too.",
    examples = {
        "tallow send report.pdf photos/                  # prints a code; the other side runs tallow receive CODE",
        "tallow send --text 'the wifi password is ...'",
        "echo secret | tallow send --text -",
        "tallow send --relay relay.example.org:4433 big.iso",
        "tallow send --to-many 3 slides.pdf              # three receivers, each with the same code",
    },
}
local opts, paths = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)

local text = opts.text
if text and #paths > 0 then ui.usage_error("give either --text or files to send, not both") end
if text == "-" then text = io.stdin:read("a") end
if not text and #paths == 0 then cli.usage_exit(spec) end
if not text then preflight.sources(paths) end
if opts.wormhole then wormhole.send(opts, paths, text) end -- to a magic-wormhole user

local code = common.new_code(opts)
if not opts.to_many then common.show_code(opts, code, "tallow receive") end

if opts.to_many then
    -- One room for N + 1 peers; every receiver gets its own session (its own PAKE and keys) and
    -- its own transfer, all running at once.
    local n = math.tointeger(opts.to_many)
    -- the room's relays in order: the room moves to the next ones if its relay dies after
    -- pairing (every receiver does the same, keeping its peer number)
    local list = common.relays_for(opts, code)
    local room, err, ecode = tallow.room.open {
        code = code, relay = list[1], failover = require("tallow.relays").failover(list, 1),
        password = opts.relay_password, transport = opts.transport, capacity = n + 1,
    }
    if not room then ui.die(err, ecode) end
    local early, early_peer = common.room_taken(room, n + 1, "--to-many " .. n .. " + this sender")
    common.show_code(opts, code, "tallow receive", n > 1 and string.format("   (on each of the %d computers)", n) or "")
    local failed, tasks = 0, {}
    for i = 1, n do
        local s, peer, acode
        if early then s, peer, early = early, early_peer, nil else s, peer, acode = room:accept() end
        if not s then ui.die(peer, acode) end
        ui.say("Receiver %d of %d connected (peer %d).", i, n, peer)
        ui.event("paired", { peer = peer, path = s:info().path, verify = s:info().verify })
        if opts.verify then ui.say("Verification with peer %d: %s", peer, s:info().verify) end
        tasks[i] = tallow.spawn(function()
            local res, terr, tcode = s:send_files(paths, { text = text, progress = opts.json and "json" or "none" })
            if res then
                ui.say("Sent %d file%s, %s to peer %d in %.2f s.", res.files, res.files == 1 and "" or "s",
                    ui.size(res.total), peer, res.seconds)
                ui.event("sent", { peer = peer, files = res.files, bytes = res.total, seconds = res.seconds })
            else
                failed = failed + 1
                io.stderr:write(string.format("tallow: peer %d: %s\n", peer, tostring(terr)))
                ui.event("error", { peer = peer, message = terr, code = tcode or "" })
            end
            s:close()
        end)
    end
    for _, task in ipairs(tasks) do task:join() end
    room:close()
    if failed > 0 then ui.die(string.format("%d of %d receivers did not get everything", failed, n)) end
    os.exit(0, true)
end

local s <close> = common.open(opts, code, true)
local res, err, ecode, partial = s:send_files(paths, { text = text, progress = ui.progress_mode() })
ui.notices((res or partial or {}).notices) -- what was refused, and why
if not res then ui.die(err, ecode) end
ui.say("Sent %d file%s, %s in %.2f s, over the %s%s.", res.files, res.files == 1 and "" or "s",
    ui.size(res.total), res.seconds, res.path == "direct" and "direct path" or res.path,
    res.resumed > 0 and string.format("; %s %s already there", ui.size(res.resumed), res.resumed == 1 and "was" or "were") or "")
ui.event("sent", { files = res.files, bytes = res.total, wire_bytes = res.wire_bytes, resumed = res.resumed, seconds = res.seconds, path = res.path, transport = s:info().stats })
