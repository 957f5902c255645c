-- tallow.plugins.module: a plugin's Lua face (the wormhole plugin's here), no network needed.
local tallow = require "tallow"

local none, msg, code = tallow.plugins.module("no-such-face")
assert(none == nil and code == "TALLOW_ENOTFOUND" and msg:find("no-such-face", 1, true), msg)

if not tallow.plugins.module("wormhole") then assert(tallow.plugins.load("wormhole")) end
local wh = assert(tallow.plugins.module("wormhole"))
assert(rawequal(wh, tallow.plugins.module("wormhole")), "opened once per state")
assert(type(wh.open) == "function")
assert(wh.default_relay == "ws://relay.magic-wormhole.io:4000/v1", wh.default_relay)
assert(wh.default_transit == "tcp:transit.magic-wormhole.io:4001", wh.default_transit)

-- failures come back as nil, message, code name
local w, err, ecode = wh.open { relay = "http://mailbox.invalid/v1", code = "1-a-b" }
assert(w == nil and ecode == "TALLOW_EINVAL" and err:find("ws://", 1, true), err)
-- a mailbox nobody listens on (a port just closed on loopback)
local probe = io.popen("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));print(s.getsockname()[1])'")
local port = probe:read("l")
probe:close()
w, err, ecode = wh.open { relay = "ws://127.0.0.1:" .. port .. "/v1", code = "1-a-b" }
assert(w == nil and err:find("cannot reach the mailbox server", 1, true), err)
assert(type(ecode) == "string" and ecode ~= "", ecode)
print("plugin module ok")
