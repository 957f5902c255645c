-- send-to-many.lua: send one folder (or files) to several receivers at once.
--
--   tallow run examples/scripts/send-to-many.lua --count 3 build/
--
-- prints one code per receiver; each receiver runs `tallow receive CODE`. Multi-peer rooms are
-- not in tallow yet, so this is N ordinary pair sessions side by side, one code each, in parallel
-- coroutines (tallow.spawn): every receiver gets its own PAKE, its own keys, and a slow receiver
-- never holds up the others. Exit status 0 only if every receiver got everything.
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"

local spec = {
    usage = "tallow run send-to-many.lua [options] FILE|DIR...",
    summary = "Send the same files to several receivers, one code each, in parallel.",
    options = cli.with_relay_options {
        { "--count", "-n", arg = "N", number = true, help = "number of receivers", default = 2 },
        { "--codes", arg = "FILE", help = "also write the codes to FILE, one a line" },
        { "--code-prefix", arg = "CODE", help = "use CODE-1, CODE-2, ... (words only, e.g. 7-apple-pie) instead of fresh codes" },
    },
}
local opts, paths = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
if #paths == 0 then
    io.stderr:write(cli.usage(spec) .. "\n")
    os.exit(2)
end

-- step 1: one code per receiver
local codes = {}
for i = 1, opts.count do
    if opts.code_prefix then
        local words = { "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten" }
        codes[i] = assert(tallow.code.normalize(opts.code_prefix .. "-" .. (words[i] or tostring(i))))
    else
        codes[i] = tallow.code.generate(3)
    end
    ui.say("receiver %d:  tallow receive %s", i, codes[i])
    ui.event("code", { receiver = i, code = codes[i] })
end
if opts.codes then
    local f = assert(io.open(opts.codes, "w"))
    f:write(table.concat(codes, "\n"), "\n")
    f:close()
end

-- step 2: one coroutine per receiver: open, send, report
local results, tasks = {}, {}
for i, code in ipairs(codes) do
    tasks[i] = tallow.spawn(function()
        local s, err = tallow.session.open {
            code = code, relay = opts.relay, password = opts.relay_password,
            transport = opts.transport, initiator = true,
        }
        local res
        if s then
            res, err = s:send_files(paths, { progress = "none" })
            s:close()
        end
        results[i] = res or { error = err }
        if res then
            ui.say("receiver %d: sent %d file%s, %s in %.2f s", i, res.files, res.files == 1 and "" or "s",
                ui.size(res.total), res.seconds)
        else
            ui.say("receiver %d: failed: %s", i, tostring(err))
        end
        ui.event("done", { receiver = i, ok = res ~= nil, files = res and res.files or 0 })
    end)
end

-- step 3: wait for all of them
for _, task in ipairs(tasks) do task:join() end
local failed = 0
for i = 1, opts.count do
    if results[i].error then failed = failed + 1 end
end
ui.say("%d of %d receivers got everything", opts.count - failed, opts.count)
os.exit(failed == 0 and 0 or 1)
