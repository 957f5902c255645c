-- tallow.preflight: what every command checks before it shows a code (issue 16): the paths it
-- sends (walked like the sender will, naming what cannot be sent), the relay (a TCP connection
-- opens), the receiver's destination (created when missing, writable). A failure names the
-- thing and says what to do; nothing is shown to the other person until all of it is right.
local tallow = require "tallow"
local ui = require "tallow.ui"
local M = {}

local function lower_first(s) return (tostring(s):gsub("^%u", string.lower)) end

-- Every path of `send`: exists, is not a symlink, can be read, and so can everything inside.
-- Links and special files inside folders are never sent; they are named (a note), not fatal.
function M.sources(paths)
    for _, p in ipairs(paths) do
        local st, err = tallow.fs.stat(p)
        if not st then
            ui.die(string.format("cannot send %s: %s. Nothing was sent and no code was made.",
                ui.printable(p), lower_first(err)))
        elseif st.type == "link" then
            ui.die(string.format("cannot send %s: it is a symbolic link, and tallow does not follow links. " ..
                "Name the file or folder it points to instead.", ui.printable(p)))
        elseif st.type == "other" then
            ui.die(string.format("cannot send %s: it is not a regular file or a folder.", ui.printable(p)))
        end
    end
    local r, err = tallow.fs.check(paths)
    if not r then ui.die("cannot send " .. ui.printable(err)) end
    local fatal = 0
    for _, pr in ipairs(r.problems) do
        if pr.fatal then
            fatal = fatal + 1
            if fatal <= ui.NOTICES_SHOWN then
                io.stderr:write(string.format("tallow: cannot send %s: %s\n", ui.printable(pr.path), pr.why))
            end
        else
            io.stderr:write(string.format("tallow: note: %s: %s\n", ui.printable(pr.path), pr.why))
        end
        ui.event(pr.fatal and "unreadable" or "skipped", { path = pr.path, why = pr.why })
    end
    if fatal > ui.NOTICES_SHOWN then
        io.stderr:write(string.format("tallow: ... and %d more that cannot be read\n", fatal - ui.NOTICES_SHOWN))
    end
    if fatal > 0 then
        ui.die(string.format("%d item%s cannot be read, so nothing was sent and no code was made. " ..
            "Fix the permissions or leave %s out.", fatal, fatal == 1 and "" or "s", fatal == 1 and "it" or "them"))
    end
    return r
end

-- The relay answers: a TCP connection to it (or to the proxy) opens within 3 s. Other
-- transports (--transport) are not checked. Dies with the reason and what to do.
function M.relay(opts, list)
    if opts.transport and opts.transport ~= "relay" then return end
    local proxy = tallow.policy.proxy and tallow.policy.proxy()
    local targets = {}
    if proxy and proxy ~= "" then
        local hp = proxy:gsub("^%a[%w+.-]*://", ""):gsub("^.*@", "")
        targets[1] = { hp, "the SOCKS5 proxy" }
    else
        for _, r in ipairs(list) do targets[#targets + 1] = { r, "the relay" } end
    end
    local reasons = {}
    for _, t in ipairs(targets) do
        local hp = t[1]:gsub("^tls://", ""):gsub("^tcp://", "") -- the TCP connection under TLS
        local host, port = hp:match("^%[(.*)%]:(%d+)$")
        if not host then host, port = hp:match("^(.*):(%d+)$") end
        if not host and hp:match("^[%w.-]+%.?$") and hp:find("%a") then
            return -- a DNS fleet name (SRV lookup later, with its own errors): not probed here
        end
        if not host then
            ui.usage_error(string.format("%s is not HOST:PORT (for example relay.example.org:4433)", ui.printable(t[1])))
        end
        local ok, why = tallow.loop.probe(host, port, 3)
        if ok then return end
        reasons[#reasons + 1] = string.format("%s at %s: %s", t[2], ui.printable(t[1]), why)
    end
    local hint
    if proxy and proxy ~= "" then
        hint = "Is the proxy running (Tor listens on 127.0.0.1:9050)?"
    else
        hint = "Start one with `tallow relay` (on a machine both sides can reach), or name a running one " ..
            "with --relay HOST:PORT or TALLOW_RELAY=HOST:PORT."
    end
    ui.die(string.format("cannot connect to %s. %s", table.concat(reasons, "; "), hint), "TALLOW_ERELAY")
end

-- The receiver's destination folder: created (with parents) when missing, and writable.
function M.destination(dir)
    local st = tallow.fs.stat(dir)
    if st and st.type ~= "dir" then
        ui.die(string.format("cannot receive into %s: it exists and is not a folder.", ui.printable(dir)))
    end
    if not st then
        local ok, err = tallow.fs.mkdirs(dir)
        if not ok then
            ui.die(string.format("cannot create the folder %s: %s.", ui.printable(dir), lower_first(err)))
        end
    end
    local ok, err = tallow.fs.writable(dir)
    if not ok then
        ui.die(string.format("cannot write into %s: %s. Choose another folder with -o DIR.",
            ui.printable(dir), lower_first(err)))
    end
end

return M
