-- midway.lua ROLE RELAY CODE PATH: a transfer that does not wait for the direct path. It starts
-- over the relay at once and the session moves it to QUIC when the path comes up; prints the
-- path the transfer ended on. ROLE is "send" (PATH: the file) or "receive" (PATH: the folder).
local tallow = require "tallow"
local role, relay, code, path = arg[1], arg[2], arg[3], arg[4]
local s <close>, err = tallow.session.open { code = code, relay = relay, initiator = role == "send" }
assert(s, err)
local res
if role == "send" then
    res, err = s:send_files({ path }, {})
else
    local name, offer = s:recv()
    assert(name == "FileOffer", name)
    res, err = s:receive_files(offer, { dest = path })
end
assert(res, err)
print("path " .. res.path)
