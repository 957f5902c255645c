-- Encrypted line chat with the peer (or a group) who has the code
--
-- `tallow chat` makes a code and waits; `tallow chat CODE` joins. With `--capacity N` the side
-- that makes the code opens a group chat for N people (the others still run `tallow chat CODE`):
-- every pair of members has its own session and keys (tallow.room), each line goes to every
-- other member. Lines come from stdin (a terminal or a pipe); `/quit` or the end of stdin
-- leaves. Incoming lines are printed on stdout as `peer: text` (`peer N: text` in a group) with
-- control characters, escape sequences and bidi overrides shown escaped, never interpreted.
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"

local spec = {
    usage = "tallow chat [options] [CODE]",
    summary = "Chat line by line with the peer who has the code (or a group: --capacity N).",
    description = "Without CODE a code is made and printed; the others run `tallow chat CODE`.\n" ..
        "Type lines to send them; /quit (or end of input) leaves.",
    options = cli.with_relay_options(cli.options({
        { "--capacity", arg = "N", number = true, int = true, min = 2, max = 1024, why = "a stock relay allows 16 unless started with --max-peers", help = "group chat for N people in all (making side)", default = 2 },
    }, cli.code_options("making side"))),
    examples = {
        "tallow chat                       # prints a code; the other side runs tallow chat CODE",
        "tallow chat 7-crossword-rhythm-velvet",
        "tallow chat --capacity 4          # a group of four: the three others run tallow chat CODE",
        "echo 'build done' | tallow chat --code 7-crossword-rhythm-velvet",
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)

-- Neutralises what a terminal would interpret: C0/C1 controls, DEL, and bidi overrides become
-- visible escapes; invalid UTF-8 bytes are escaped one by one.
local function safe(s)
    local out = {}
    local i, n = 1, #s
    while i <= n do
        local c = s:byte(i)
        local len = c < 0x80 and 1 or c >= 0xf0 and 4 or c >= 0xe0 and 3 or c >= 0xc2 and 2 or 0
        local ch = len > 0 and s:sub(i, i + len - 1) or nil
        local cp = ch and #ch == len and utf8.len(ch) == 1 and utf8.codepoint(ch) or nil
        if not cp then
            out[#out + 1] = string.format("\\x%02x", c)
            i = i + 1
        else
            if cp < 0x20 or cp == 0x7f or (cp >= 0x80 and cp < 0xa0) or (cp >= 0x202a and cp <= 0x202e)
                or (cp >= 0x2066 and cp <= 0x2069) or cp == 0x200e or cp == 0x200f or cp == 0x061c then
                out[#out + 1] = cp < 0x100 and string.format("\\x%02x", cp) or string.format("\\u{%x}", cp)
            else
                out[#out + 1] = ch
            end
            i = i + len
        end
    end
    return table.concat(out)
end

local making = args[1] == nil
local code
if making then
    code = common.new_code(opts)
else
    code = common.code_from(args[1], opts)
    ui.event("code", { code = code })
end

local group = opts.capacity > 2
local peers = {}   -- peer key -> { s = session, name = }
local npeers, ever = 0, 0
local seq = 0
local room

-- On a terminal (stdin and stdout), the line being typed is edited here ("> " and what is typed
-- so far, at the bottom): an incoming line is printed above it and the typed line redrawn, the
-- usual readline way, instead of splicing into it; one's own lines show as "you: ...".
local editor -- { buf = typed so far } while the terminal is edited here
local PROMPT = "> "
local function redraw()
    io.stdout:write("\r\27[K", PROMPT, editor.buf)
    io.stdout:flush()
end

local function out(line)
    if ui.json then return end -- the "text" event carries it
    if editor then
        io.stdout:write("\r\27[K", line, "\n")
        redraw()
        return
    end
    io.stdout:write(line, "\n")
    io.stdout:flush()
end

-- status lines ("* peer joined"): stderr, or above the typed line on a terminal
local function status(fmt, ...)
    if editor and not ui.json then return out(string.format(fmt, ...)) end
    ui.say(fmt, ...)
end

local quitting = false
local accepting = true
local function finish(status)
    quitting = true
    if editor then
        io.stdout:write("\r\27[K")
        io.stdout:flush()
        tallow.loop.tty_raw(false)
        editor = nil
    end
    for _, p in pairs(peers) do
        p.s:send("ChatEnd", { reason = "quit" })
    end
    -- closing flushes what each session queued (the goodbyes) before it leaves the room
    for _, p in pairs(peers) do p.s:close() end
    if room then room:close() end
    os.exit(status)
end

-- Ctrl-C leaves like /quit: the others are told (ChatEnd) instead of waiting for the relay
tallow.loop.on_signal(function() finish(0) end)

local function send_line(line)
    seq = seq + 1
    for _, p in pairs(peers) do
        local ok, err = p.s:send("ChatText", { seq = seq, text = line })
        if not ok then status("tallow: could not send to %s: %s", p.name, err) end
    end
end

local function add_peer(s, key, name)
    peers[key] = { s = s, name = name }
    npeers, ever = npeers + 1, ever + 1
    local info = s:info()
    ui.event("paired", { peer = name, path = info.path, verify = info.verify })
    if opts.verify then status("Verification with %s: %s", name, info.verify) end
    status("* %s joined", name)
    tallow.spawn(function()
        while true do
            local kind, m, code = s:recv()
            if quitting then return end
            if kind == "ChatText" then
                out(name .. ": " .. safe(m.text or ""))
                ui.event("text", { peer = name, text = m.text or "" })
            elseif kind == "ChatEnd" or kind == nil then
                peers[key] = nil
                npeers = npeers - 1
                local orderly = kind or code == "ECLOSED" -- ChatEnd, or it left the room in order
                status("* %s %s", name, orderly and "left" or "is gone (" .. tostring(m) .. ")")
                ui.event("left", { peer = name })
                s:close()
                if not group or (not accepting and npeers == 0) then
                    if editor then io.stdout:write("\r\27[K") io.stdout:flush() end
                    room:close()
                    os.exit(orderly and 0 or 1)
                end
                return
            end
            -- other message types (typing indicators, receipts) are ignored
        end
    end)
end

-- the terminal's line editor (see `editor` above)
local function edit_stdin()
    editor = { buf = "" }
    redraw()
    local reader = tallow.loop.reader(0)
    while true do
        local data = reader:bytes()
        if not data then finish(0) end
        for ch in data:gmatch("[%z\1-\127\194-\244][\128-\191]*") do
            local b = ch:byte()
            if ch == "\r" or ch == "\n" then
                local line = editor.buf
                editor.buf = ""
                if line == "/quit" then finish(0) end
                if line ~= "" then
                    out("you: " .. safe(line))
                    send_line(line)
                else
                    redraw()
                end
            elseif b == 127 or b == 8 then
                editor.buf = editor.buf:gsub("[%z\1-\127\194-\244][\128-\191]*$", "")
                redraw()
            elseif b == 21 then -- Ctrl-U
                editor.buf = ""
                redraw()
            elseif b == 4 then -- Ctrl-D on an empty line leaves
                if editor.buf == "" then finish(0) end
            elseif b == 27 then -- an escape sequence (arrow keys): not edited, dropped
                break
            elseif b >= 32 then
                editor.buf = editor.buf .. ch
                redraw()
            end
        end
    end
end

local function read_stdin()
    if not ui.json and tallow.loop.isatty(0) and tallow.loop.isatty(1) and tallow.loop.tty_raw(true) then
        return edit_stdin()
    end
    local reader = tallow.loop.reader(0)
    local ok, first = pcall(reader.line, reader)
    local nextline
    if ok then
        local pending = first
        nextline = function()
            if pending then local l = pending; pending = nil; return l end
            return reader:line()
        end
        if first == nil then nextline = function() return nil end end
    else
        -- stdin is a regular file (not pollable): plain reads finish at once
        nextline = function() return io.stdin:read("l") end
    end
    while true do
        local line = nextline()
        if line == nil or line == "/quit" then finish(0) end
        line = line:gsub("\r$", "")
        if line ~= "" then send_line(line) end
    end
end

-- A room, one session per other member (just one in a pair chat).
do
    local err, ecode
    -- the room's relays in order (a list, or a fleet in DNS); a pair fails over to the next ones
    local list = common.relays_for(opts, code)
    room, err, ecode = tallow.room.open {
        code = code,
        relay = list[1],
        failover = require("tallow.relays").failover(list, 1),
        password = opts.relay_password,
        transport = opts.transport,
        capacity = making and opts.capacity or 0,
    }
    if not room then ui.die(err, ecode) end
    -- a group room: wait (up to 10 s) until the relay took it, so that a capacity it refuses is
    -- said before the code is shown, not after the others were told it
    local early
    if making and opts.capacity > 2 then
        local s, idx = common.room_taken(room, opts.capacity, "--capacity " .. opts.capacity)
        if s then early = { s, idx } end
    end
    -- the room is open (the relay took the capacity): only now is the code worth showing
    if making then
        common.show_code(opts, code, "tallow chat", opts.capacity > 2
            and string.format("   (on each of the %d other computers)", opts.capacity - 1) or "")
    end
    ui.event("connecting", { relay = list[1] })
    local started = false
    while true do
        local s, aerr, acode
        if early then s, aerr = early[1], early[2]; early = nil else s, aerr, acode = room:accept() end
        local idx = aerr
        if not s then
            -- a wrong code burns the room: one guess per code, never a second one
            if ever == 0 or acode == "TALLOW_ECODE" then ui.die(aerr, acode) end
            -- the room is over: the sessions still open end by themselves, then so does chat
            accepting = false
            if npeers == 0 and not quitting then os.exit(0) end
            while true do tallow.sleep(3600) end
        end
        local info = room:info()
        group = group or info.capacity > 2
        add_peer(s, idx, group and ("peer " .. idx) or "peer")
        if not started then
            started = true
            tallow.spawn(read_stdin)
        end
    end
end
