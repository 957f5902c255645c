-- tallow.ui: what the stock commands print — messages on stderr, JSON events on stdout with
-- --json, sizes for humans, prompts that wait without blocking the loop.
local tallow = require "tallow"
local M = { json = false }

local function jstr(s)
    return '"' .. tostring(s):gsub('[%c"\\]', function(c)
        return string.format("\\u%04x", c:byte())
    end) .. '"'
end

function M.event(name, fields)
    if not M.json then return end
    local parts = { '"event":' .. jstr(name) }
    for k, v in pairs(fields or {}) do
        local val = type(v) == "number" and tostring(v) or type(v) == "boolean" and tostring(v) or jstr(v)
        parts[#parts + 1] = jstr(k) .. ":" .. val
    end
    io.stdout:write("{" .. table.concat(parts, ",") .. "}\n")
    io.stdout:flush()
end

function M.say(fmt, ...)
    if M.json then return end
    io.stderr:write(string.format(fmt, ...) .. "\n")
end

-- What the engine noted on the way (refused entries and why): each one as a "refused" event, and
-- on stderr the first NOTICES_SHOWN of them and a count of the rest, so a big refused tree does not
-- flood the terminal.
M.NOTICES_SHOWN = 20
function M.notices(list)
    for i, n in ipairs(list or {}) do
        if i <= M.NOTICES_SHOWN then io.stderr:write("tallow: " .. n .. "\n") end
        M.event("refused", { message = n })
    end
    local more = #(list or {}) - M.NOTICES_SHOWN
    if more > 0 then
        io.stderr:write(string.format("tallow: ... and %d more like these (--json lists every one)\n", more))
    end
end

-- Exit statuses, the same for every command and in --json (the "error" event carries "exit"):
-- 0 done, 1 error, 2 usage (a wrong option or argument), 3 refused or declined (by this side or
-- the peer), 4 code mismatch (a mistyped code, or someone tried to guess it).
M.EXIT = { ok = 0, error = 1, usage = 2, refused = 3, mismatch = 4 }
local EXIT_OF = {
    TALLOW_ECODE = M.EXIT.mismatch,
    TALLOW_EREJECTED = M.EXIT.refused,
    TALLOW_EEXIST = M.EXIT.refused,
    DECLINED = M.EXIT.refused,
    USAGE = M.EXIT.usage,
}
function M.exit_status(code) return EXIT_OF[code or ""] or M.EXIT.error end

-- Ctrl-C or SIGTERM: every running transfer tells its peer ("the sender cancelled"), the
-- goodbyes get a moment to leave, then the state is closed, so each session leaves its room
-- (the relay frees it at once: the same code works again). Exit status 128 + the signal.
-- A second signal ends the process at once.
M.cancelled = false
function M.on_cancel(signo)
    if M.cancelled then os.exit(128 + signo) end
    M.cancelled = signo
    local n = tallow.session.cancel_all()
    tallow.loop.fresh_line()
    io.stderr:write("tallow: cancelled" .. (n > 0 and "; the other side was told" or "") .. "\n")
    M.event("error", { message = "cancelled", code = "TALLOW_ECANCELED", exit = 128 + signo })
    tallow.sleep(0.3)
    os.exit(128 + signo, true)
end
tallow.loop.on_signal(M.on_cancel)

-- Prints the error (on a fresh line, after any progress bar) and exits with the status its code
-- maps to (M.EXIT).
function M.die(msg, code)
    if M.cancelled then -- the transfer ended because we cancelled it: on_cancel says so and exits
        pcall(tallow.sleep, 0.3)
        os.exit(128 + M.cancelled, true)
    end
    local status = M.exit_status(code)
    if M.json then M.event("error", { message = msg, code = code or "", exit = status }) end
    tallow.loop.fresh_line()
    io.stderr:write("tallow: " .. tostring(msg) .. "\n")
    os.exit(status, true) -- closes the state: sessions flush what they queued and leave the room cleanly
end

-- A wrong option value or argument: says what is wrong and exits 2.
function M.usage_error(msg)
    M.die(msg, "USAGE")
end

function M.size(n)
    local units = { "B", "KiB", "MiB", "GiB", "TiB" }
    local u = 1
    while n >= 1024 and u < #units do n = n / 1024; u = u + 1 end
    return u == 1 and string.format("%d %s", n, units[u]) or string.format("%.1f %s", n, units[u])
end

-- Escapes control and escape characters for the terminal.
function M.printable(s)
    return (tostring(s):gsub("[%z\1-\8\11-\31\127]", function(c) return string.format("\\x%02x", c:byte()) end))
end

local stdin_reader
-- Asks on stderr and reads one line from stdin (waits in the loop). nil at end of input.
function M.ask(prompt)
    io.stderr:write(prompt)
    io.stderr:flush()
    if stdin_reader == false then return io.stdin:read("l") end
    stdin_reader = stdin_reader or tallow.loop.reader(0)
    local ok, line = pcall(stdin_reader.line, stdin_reader)
    if ok then return line end
    -- stdin cannot be watched (/dev/null, a regular file): a plain read ends at once
    stdin_reader = false
    return io.stdin:read("l")
end

-- Asks for a code phrase (see tallow.codeprompt: Tab completes the words on a terminal).
function M.ask_code(prompt)
    local ok, cp = pcall(require, "tallow.codeprompt")
    if ok and tallow.loop.isatty(0) then return cp.ask(prompt) end
    return M.ask(prompt)
end

function M.progress_mode()
    if M.json then return "json" end
    return tallow.loop.isatty(2) and "bar" or "lines"
end

return M
