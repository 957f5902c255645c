-- hostile_sender.lua: a misbehaving peer for the e2e hostile-names test, written with the Lua API.
-- It opens a session like `tallow send` does but sends a hand-made offer whose manifest names one
-- file as the test says, then tries to push bytes for it anyway.
--   tallow run hostile_sender.lua CODE RELAY HEXNAME [stop]
-- HEXNAME: the file name, hex-encoded (so ESC and CR pass through argv). With "stop", the peer
-- ends the accepted transfer with a TransferError whose message holds escape characters.
-- Prints what the receiver answered, one line each, on stdout.
local tallow = require "tallow"

local code, relay, hexname, how = arg[1], arg[2], arg[3], arg[4]
assert(code and relay and hexname, "usage: hostile_sender.lua CODE RELAY HEXNAME [stop]")
local name = hexname:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)

local function varint(n)
    local out = {}
    repeat
        local b = n & 0x7f
        n = n >> 7
        out[#out + 1] = string.char(n > 0 and (b | 0x80) or b)
    until n == 0
    return table.concat(out)
end
local function zigzag(v) return (v << 1) ~ (v >> 63) end

-- manifest: version(1) n { type | path_len path | size | mode | zigzag(mtime_ns) }
local payload = "EVIL!"
local function manifest(entries)
    local parts = { varint(1), varint(#entries) }
    for _, e in ipairs(entries) do
        parts[#parts + 1] = varint(e.dir and 1 or 0) .. varint(#e.path) .. e.path ..
            varint(e.size or 0) .. varint(e.mode or 420) .. varint(zigzag(e.mtime or 0))
    end
    return table.concat(parts)
end

local s, err = tallow.session.open { code = code, relay = relay, initiator = true }
if not s then io.stderr:write("hostile: open failed: " .. tostring(err) .. "\n") os.exit(3) end

local tid = 4242
local m = manifest { { path = name, size = #payload, mode = 420, mtime = 1600000000 * 1000000000 } }
assert(s:send("FileOffer", { transfer_id = tid, kind = 0, count = 1, total_size = #payload, manifest = m }))

-- transfer messages go under the transfer's own key, as the engine sends them (the receiver's
-- engine refuses them under any other key)
local function tx(name, t) return s:send_tx(tid, name, t) end

local function answer(secs)
    local n, msg = s:recv(secs)
    if not n then print("none " .. tostring(msg)) return nil end
    print(n .. (msg.reason and (" " .. msg.reason) or "") .. (msg.message and (" " .. msg.message) or ""))
    return n, msg
end

local n, msg = answer(10)
if n == "FileAccept" then
    -- whatever the receiver accepted, push the bytes for entry 0 and claim it is complete
    print("resume " .. #msg.resume .. " bytes")
    if how == "stop" then
        tx("TransferError", { transfer_id = tid, code = -1, message = "bad \27[31mred\27[0m\rover" })
    else
        tx("Chunk", { transfer_id = tid, file_index = 0, offset = 0, data = payload, last = true })
        tx("TransferComplete", { transfer_id = tid, files = 1, bytes = #payload })
    end
    answer(5)
end
tallow.sleep(0.3)
s:close()
