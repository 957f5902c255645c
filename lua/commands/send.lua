-- Send files, folders or text to the peer who has the code
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"

local spec = {
    usage = "tallow send [options] FILE|DIR...   |   tallow send --text TEXT|-",
    summary = "Send files, folders or text. Prints a code phrase; the other side runs `tallow receive CODE`.",
    options = cli.with_relay_options {
        { "--code", arg = "CODE", help = "use this code phrase instead of a new one", env = "TALLOW_CODE" },
        { "--words", arg = "N", number = true, help = "words in a generated code", default = 3 },
        { "--text", arg = "TEXT", help = "send TEXT (or '-' for stdin) instead of files" },
        { "--verify", help = "show a verification string both sides can compare" },
    },
}
local opts, paths = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)

local text = opts.text
if text == "-" then text = io.stdin:read("a") end
if not text and #paths == 0 then
    io.stderr:write(cli.usage(spec) .. "\n")
    os.exit(2)
end

local code = common.new_code(opts)
if not opts.code and not os.getenv("TALLOW_CODE") then
    ui.say("Code is: %s", code)
    ui.say("On the other computer run:  tallow receive %s", code)
end
ui.event("code", { code = code })

local s <close> = common.open(opts, code, true)
local res, err, ecode = s:send_files(paths, { text = text, progress = ui.progress_mode() })
if not res then ui.die(err, ecode) end
ui.say("Sent %d file%s, %s in %.2f s over the %s%s.", res.files, res.files == 1 and "" or "s",
    ui.size(res.total), res.seconds, res.path,
    res.resumed > 0 and string.format(" (%s were already there)", ui.size(res.resumed)) or "")
ui.event("sent", { files = res.files, bytes = res.total, wire_bytes = res.wire_bytes, resumed = res.resumed, seconds = res.seconds, path = res.path })
