-- Share the clipboard (text and PNG images) with the peer who has the code
--
-- `tallow clip` sends what is on the clipboard now (`--watch`: and every new content, polled
-- twice a second); `tallow clip --receive CODE` puts what arrives on this clipboard (`--watch`:
-- keeps doing so until the sender stops).
--
-- Clipboards: X11 through xclip (or xsel, text only), Wayland through wl-paste / wl-copy, and
-- stdin / stdout where there is none (`--stdio`, or automatically without DISPLAY and
-- WAYLAND_DISPLAY).
--
-- On the wire each clipboard content is one text transfer (kind 1, inside the session's
-- encryption). Plain text goes as it is, so `tallow receive CODE` can take it too; any other
-- type goes as "\0tallow-clip TYPE\n" followed by the bytes (TYPE: image/png).
local tallow = require "tallow"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"

local spec = {
    usage = "tallow clip [options]   |   tallow clip --receive [options] [CODE]",
    summary = "Send the clipboard (text, PNG images) to the peer, or put what arrives on it.",
    options = cli.with_relay_options(cli.options({
        { "--receive", "-r", help = "receive into this clipboard (the code from the argument, TALLOW_CODE or a prompt)" },
        { "--watch", "-w", help = "keep going: send each new clipboard content / receive until the sender stops" },
        { "--stdio", help = "no clipboard: read the content from stdin, write what arrives to stdout" },
        { "--max-size", arg = "BYTES", number = true, int = true, min = 1, help = "largest content sent or accepted", default = 32 * 1024 * 1024 },
        { "--interval", arg = "SECONDS", number = true, min = 0.05, help = "how often --watch looks at the clipboard", default = 0.5 },
    }, cli.code_options("sending side"))),
    examples = {
        "tallow clip                                   # sends what the clipboard holds; prints a code",
        "tallow clip --receive 7-crossword-rhythm-velvet",
        "tallow clip --watch                           # and every later copy, until Ctrl-C",
        "echo hello | tallow clip --stdio",
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
local MAX = opts.max_size
local TEXT = "text/plain"
local PNG = "image/png"
local HDR = "\0tallow-clip "

-- ---- clipboard backends: each has get() -> data, type | nil and set(data, type)

local function have(cmd)
    local f = io.popen("command -v " .. cmd .. " 2>/dev/null")
    local out = f:read("a")
    f:close()
    return out ~= ""
end

local function run_read(cmd)
    local f = io.popen(cmd .. " 2>/dev/null", "r")
    if not f then return nil end
    local data = f:read(MAX + 1)
    f:close()
    if data and #data > MAX then
        ui.say("tallow: clipboard content is larger than --max-size (%d bytes); not sent", MAX)
        return nil
    end
    return data ~= "" and data or nil
end

local function run_write(cmd, data)
    -- the clipboard tools keep serving the selection in the background: detach their output
    local f = assert(io.popen(cmd .. " >/dev/null 2>&1", "w"))
    f:write(data)
    local ok, how, status = f:close()
    if not ok then ui.die(string.format("'%s' failed (%s %s)", cmd, tostring(how), tostring(status))) end
end

local function list_has(list, want)
    for line in (list or ""):gmatch("[^\n]+") do
        if line:gsub("%s+$", "") == want then return true end
    end
    return false
end

local backends = {}

backends.xclip = {
    get = function()
        if list_has(run_read("xclip -selection clipboard -o -t TARGETS"), PNG) then
            local d = run_read("xclip -selection clipboard -o -t image/png")
            if d then return d, PNG end
        end
        local d = run_read("xclip -selection clipboard -o")
        return d, d and TEXT
    end,
    set = function(data, kind)
        run_write("xclip -selection clipboard -t " .. (kind == PNG and PNG or "UTF8_STRING") .. " -i", data)
    end,
}

backends.xsel = {
    get = function()
        local d = run_read("xsel --clipboard --output")
        return d, d and TEXT
    end,
    set = function(data, kind)
        if kind ~= TEXT then ui.die("xsel cannot hold " .. kind .. "; install xclip") end
        run_write("xsel --clipboard --input", data)
    end,
}

backends.wayland = {
    get = function()
        if list_has(run_read("wl-paste --list-types"), PNG) then
            local d = run_read("wl-paste --no-newline --type image/png")
            if d then return d, PNG end
        end
        local d = run_read("wl-paste --no-newline")
        return d, d and TEXT
    end,
    set = function(data, kind)
        run_write("wl-copy" .. (kind == PNG and " --type image/png" or ""), data)
    end,
}

local stdin_used = false
backends.stdio = {
    get = function()
        if stdin_used then return nil end
        stdin_used = true
        local d = io.stdin:read(MAX + 1)
        if d and #d > MAX then ui.die("input is larger than --max-size") end
        if not d or d == "" then return nil end
        return d, d:sub(1, 8) == "\137PNG\r\n\26\n" and PNG or TEXT
    end,
    set = function(data, kind)
        io.stdout:write(data)
        io.stdout:flush()
    end,
}

local function pick_backend()
    if opts.stdio then return "stdio" end
    local wl, x = os.getenv("WAYLAND_DISPLAY"), os.getenv("DISPLAY")
    if wl and wl ~= "" and have("wl-paste") and have("wl-copy") then return "wayland" end
    if x and x ~= "" then
        if have("xclip") then return "xclip" end
        if have("xsel") then return "xsel" end
        ui.die("DISPLAY is set but neither xclip nor xsel is installed (or use --stdio)")
    end
    if wl and wl ~= "" then ui.die("WAYLAND_DISPLAY is set but wl-clipboard is not installed (or use --stdio)") end
    return "stdio"
end

local bname = pick_backend()
local board = backends[bname]

-- ---- wire form

local function pack(data, kind)
    if kind == TEXT then return data end
    return HDR .. kind .. "\n" .. data
end

local function unpack(payload)
    if payload:sub(1, #HDR) ~= HDR then return payload, TEXT end
    local nl = payload:find("\n", #HDR + 1, true)
    if not nl then return payload, TEXT end
    local kind = payload:sub(#HDR + 1, nl - 1)
    if kind ~= PNG then return nil, kind end
    return payload:sub(nl + 1), kind
end

local function describe(data, kind)
    return string.format("%s (%s)", kind == TEXT and "text" or "a PNG image", ui.size(#data))
end

-- ---- receiving side

if opts.receive then
    local code = common.code_from(args[1], opts)
    local s <close> = common.open(opts, code, false)
    local got = 0
    while true do
        local name, offer = s:recv()
        if not name then
            if got > 0 then os.exit(0) end
            ui.die(offer)
        end
        if name == "FileOffer" then
            if offer.kind ~= 1 then
                s:reject(offer, "tallow clip takes clipboard contents, not files")
                ui.say("tallow: refused files (use tallow receive for files)")
            elseif offer.total_size > MAX + #HDR + 32 then
                s:reject(offer, "larger than the receiver's --max-size")
                ui.say("tallow: refused %s: larger than --max-size", ui.size(offer.total_size))
            else
                local res, err, ecode = s:receive_files(offer, {})
                if not res then ui.die(err, ecode) end
                local data, kind = unpack(res.text or "")
                if not data then
                    ui.say("tallow: ignored a clipboard content of unsupported type %s", kind)
                else
                    board.set(data, kind)
                    got = got + 1
                    ui.say("Clipboard now holds %s.", describe(data, kind))
                    ui.event("clip", { kind = kind, bytes = #data })
                end
            end
            if not opts.watch and got > 0 then os.exit(0) end
        end
    end
end

-- ---- sending side

if bname == "stdio" and opts.watch then ui.die("--watch needs a clipboard (stdin is read once)") end
local code = common.new_code(opts)
common.show_code(opts, code, "tallow clip --receive" .. (opts.watch and " --watch" or ""))

local first, first_kind = board.get()
if not first and not opts.watch then ui.die("the clipboard is empty") end

local s <close> = common.open(opts, code, true)

local function send(data, kind)
    local res, err, ecode = s:send_files(nil, { text = pack(data, kind) })
    if not res then ui.die(err, ecode) end
    ui.say("Sent %s.", describe(data, kind))
    ui.event("clip", { kind = kind, bytes = #data })
end

local last
if first then
    send(first, first_kind)
    last = first_kind .. "\0" .. first
end
if not opts.watch then
    s:close()
    os.exit(0)
end

while true do
    tallow.sleep(opts.interval)
    local data, kind = board.get()
    if data then
        local key = kind .. "\0" .. data
        if key ~= last then
            send(data, kind)
            last = key
        end
    end
end
