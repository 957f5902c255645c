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
        { "--capacity", arg = "N", number = true, help = "group chat for N people in all (making side)", default = 2 },
    }, cli.code_options("making side"))),
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
if opts.capacity < 2 then ui.die("--capacity must be at least 2") end

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
    if not opts.code and not os.getenv("TALLOW_CODE") then
        ui.say("Code is: %s", code)
        ui.say("On the other computer%s run:  tallow chat %s", opts.capacity > 2 and "s" or "", code)
    end
else
    code = common.code_from(args[1])
end
ui.event("code", { code = code })

local group = opts.capacity > 2
local peers = {}   -- peer key -> { s = session, name = }
local npeers, ever = 0, 0
local seq = 0
local room

local function out(line)
    if ui.json then return end -- the "text" event carries it
    io.stdout:write(line, "\n")
    io.stdout:flush()
end

local quitting = false
local accepting = true
local function finish(status)
    quitting = true
    for _, p in pairs(peers) do
        p.s:send("ChatEnd", { reason = "quit" })
    end
    tallow.sleep(0.2) -- let the goodbyes leave before the connection closes
    for _, p in pairs(peers) do p.s:close() end
    if room then room:close() end
    os.exit(status)
end

local function send_line(line)
    seq = seq + 1
    for _, p in pairs(peers) do
        local ok, err = p.s:send("ChatText", { seq = seq, text = line })
        if not ok then ui.say("tallow: could not send to %s: %s", p.name, err) end
    end
end

local function add_peer(s, key, name)
    peers[key] = { s = s, name = name }
    npeers, ever = npeers + 1, ever + 1
    local info = s:info()
    ui.event("paired", { peer = name, path = info.path, verify = info.verify })
    if opts.verify then ui.say("Verification with %s: %s", name, info.verify) end
    ui.say("* %s joined", name)
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
                ui.say("* %s %s", name, orderly and "left" or "is gone (" .. tostring(m) .. ")")
                ui.event("left", { peer = name })
                s:close()
                if not group or (not accepting and npeers == 0) then
                    room:close()
                    os.exit(orderly and 0 or 1)
                end
                return
            end
            -- other message types (typing indicators, receipts) are ignored
        end
    end)
end

local function read_stdin()
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
    ui.event("connecting", { relay = list[1] })
    local started = false
    while true do
        local s, aerr, acode = room:accept()
        local idx = aerr
        if not s then
            if ever == 0 then ui.die(aerr, acode) end
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
