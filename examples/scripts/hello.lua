-- hello.lua: encode a CandidateOffer through the message registry and decode it back.
local tallow = require "tallow"

local offer = { kind = 1, priority = 1694498815, addr = "\4\x1f\x90\198\51\100\7", foundation = "srflx1" }
local frame = assert(tallow.msg.encode("CandidateOffer", offer))
print(string.format("encoded CandidateOffer (id %d) into %d bytes: %s", tallow.msg.id("CandidateOffer"),
    #frame, (frame:gsub(".", function(c) return string.format("%02x", c:byte()) end))))

local name, back = assert(tallow.msg.decode(frame))
print("decoded " .. name .. ":")
for _, k in ipairs({ "kind", "priority", "foundation" }) do
    print(string.format("  %-10s %s", k, tostring(back[k])))
end
print(string.format("  %-10s %d bytes", "addr", #back.addr))
assert(back.priority == offer.priority and back.addr == offer.addr and back.foundation == offer.foundation)
print("round trip ok")
tallow.sleep(0.01)
