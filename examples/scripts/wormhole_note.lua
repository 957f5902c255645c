-- wormhole_note.lua: send a text to a magic-wormhole user through the wormhole plugin's Lua face,
-- and print what came back. Usage: tallow run wormhole_note.lua TEXT [CODE]
-- (servers from TALLOW_WORMHOLE_RELAY / TALLOW_WORMHOLE_TRANSIT, else the public ones)
local tallow = require "tallow"
local text, code = arg[1], arg[2]
if not text then
    io.stderr:write("usage: tallow run wormhole_note.lua TEXT [CODE]\n")
    os.exit(2)
end
local wh = tallow.plugins.module("wormhole")
if not wh then
    assert(tallow.plugins.load("wormhole"))
    wh = assert(tallow.plugins.module("wormhole"))
end
local w = assert(wh.open { relay = os.getenv("TALLOW_WORMHOLE_RELAY"), transit = os.getenv("TALLOW_WORMHOLE_TRANSIT"), code = code })
io.stderr:write("code: " .. w:code() .. "\n")
local verifier, err = w:pair()
if not verifier then
    io.stderr:write("pairing failed: " .. err .. "\n")
    os.exit(1)
end
local res, serr, scode = w:send_text(text)
if not res then
    io.stderr:write("not sent: " .. serr .. " (" .. scode .. ")\n")
    os.exit(1)
end
print(string.format("sent %d bytes, verifier %s", res.bytes, verifier:sub(1, 16)))
w:close("happy")
