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

-- Prints the error and exits non-zero.
function M.die(msg, code)
    if M.json then M.event("error", { message = msg, code = code or "" }) end
    io.stderr:write("tallow: " .. tostring(msg) .. "\n")
    os.exit(1, true) -- closes the state: sessions flush what they queued and leave the room cleanly
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
    stdin_reader = stdin_reader or tallow.loop.reader(0)
    return stdin_reader:line()
end

function M.progress_mode()
    if M.json then return "json" end
    return tallow.loop.isatty(2) and "bar" or "none"
end

return M
