-- tests/hostile/peer.lua — a hostile sender: completes the PAKE like a real peer, then misbehaves
-- in one named way against a real `tallow receive`. Run by hostile.py:
--   TALLOW_RELAY=... TALLOW_CODE=... [OUTSIDE=dir] tallow run peer.lua CASE
-- Transfer messages go under the transfer's own key (s:send_tx), as the real engine sends them,
-- so the receiver's engine sees them. The manifest is hand-encoded (format: core/transfer/manifest.c).
local tallow = require "tallow"

local case = arg[1] or error("usage: peer.lua CASE")
local OUTSIDE = os.getenv("OUTSIDE") or "/nonexistent"
local TID = 4242

-- BLAKE2b-256 of the empty string: a hash that matches no resumed prefix of the cases below.
local EMPTY_HASH = ("0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8"):gsub("..",
    function(h) return string.char(tonumber(h, 16)) end)
local MiB = 1024 * 1024

local function varint(v)
    local out = {}
    repeat
        local b = v & 0x7f
        v = v >> 7 -- logical shift: a negative number is its 64-bit two's complement
        out[#out + 1] = string.char(v ~= 0 and (b | 0x80) or b)
    until v == 0
    return table.concat(out)
end

local function zigzag(v) return (v << 1) ~ (v >> 63 == 1 and -1 or 0) end

-- entries: { {path=, size=, dir=} ... }; raw overrides for hand-broken encodings
local function manifest(entries, count)
    local out = { varint(1), varint(count or #entries) }
    for _, e in ipairs(entries) do
        out[#out + 1] = e.raw or table.concat {
            varint(e.dir and 1 or 0), e.plen or varint(#e.path), e.path, e.sizeraw or varint(e.size or 0),
            varint(e.dir and 0x1ed or 0x1a4), varint(zigzag(0)),
        }
    end
    return table.concat(out)
end

local s, err = tallow.session.open { code = os.getenv("TALLOW_CODE"), relay = os.getenv("TALLOW_RELAY"), initiator = true }
if not s then
    io.stderr:write("peer: session failed: " .. tostring(err) .. "\n")
    os.exit(3)
end

local function say(...) io.stderr:write("peer: " .. string.format(...) .. "\n") end

local function offer(entries, opts)
    opts = opts or {}
    local m = opts.manifest or manifest(entries, opts.count)
    local total = 0
    for _, e in ipairs(entries) do total = total + (e.size or 0) end
    assert(s:send_tx(TID, "FileOffer", { transfer_id = TID, kind = 0, count = opts.count or #entries,
        total_size = opts.total or total, manifest = m }))
end

-- waits for the receiver's answer to the offer: FileAccept, FileReject, TransferError...
local function answer(t)
    local name, msg = s:recv(t or 5)
    say("receiver answered %s", tostring(name))
    return name, msg
end

local function chunk(idx, off, data, last, hash)
    return s:send_tx(TID, "Chunk", { transfer_id = TID, file_index = idx, offset = off, data = data,
        last = last and true or false, hash = hash or "" })
end

local function complete(files, bytes)
    return s:send_tx(TID, "TransferComplete", { transfer_id = TID, files = files or 1, bytes = bytes or 0 })
end

-- lets the receiver finish talking before the session closes
local function linger(t)
    local deadline = tallow.now() + (t or 3)
    while tallow.now() < deadline do
        local name, msg = s:recv(math.max(0.05, deadline - tallow.now()))
        if not name then break end
        if name == "TransferError" then say("receiver says: %s", msg.message) end
        if name == "TransferComplete" then say("receiver completed") end
    end
end

local function refused_offer(entries, opts)
    offer(entries, opts)
    answer()
    linger(1)
end

local cases = {}

-- ---- names
cases.dotdot = function() refused_offer { { path = "../escape.txt", size = 5 } } end
cases.dotdot_nested = function() refused_offer { { path = "a", dir = true }, { path = "a/../../escape.txt", size = 5 } } end
cases.absolute = function() refused_offer { { path = OUTSIDE .. "/abs.txt", size = 5 } } end
cases.backslash = function() refused_offer { { path = "..\\..\\escape.txt", size = 5 } } end
cases.case_collision = function() refused_offer { { path = "A.txt", size = 0 }, { path = "a.txt", size = 0 } } end
cases.nul_in_name = function() refused_offer { { path = "a\0/../../escape.txt", size = 0 } } end
cases.device_con = function() refused_offer { { path = "CON", size = 0 } } end
cases.device_nul_txt = function() refused_offer { { path = "nul.txt", size = 0 } } end
cases.terminal_escape = function() refused_offer { { path = "\27]0;pwned\7\27[2Jx.txt", size = 0 } } end
cases.bad_utf8 = function() refused_offer { { path = "\xff\xfe.txt", size = 0 } } end
cases.trailing_dot = function() refused_offer { { path = "evil.txt.", size = 0 } } end
-- two spellings of "é.txt": NFC (U+00E9) and NFD (e + U+0301)
cases.nfc_nfd = function()
    offer { { path = "\xc3\xa9.txt", size = 0 }, { path = "e\xcc\x81.txt", size = 0 } }
    local name = answer()
    if name == "FileAccept" then
        chunk(0, 0, "", true)
        chunk(1, 0, "", true)
        complete(2, 0)
    end
    linger(2)
end

-- ---- the destination fights back: what was planted there must not be followed or replaced
cases.symlink_dir = function() -- DEST/link -> OUTSIDE
    offer { { path = "link", dir = true }, { path = "link/evil.txt", size = 0 } }
    if answer() == "FileAccept" then
        chunk(1, 0, "", true)
        complete(1, 0)
    end
    linger(2)
end
cases.symlink_file = function() -- DEST/planted.txt -> OUTSIDE/target.txt
    offer { { path = "planted.txt", size = 5 } }
    if answer() == "FileAccept" then
        chunk(0, 0, "owned", true)
        complete(1, 5)
    end
    linger(2)
end
cases.no_overwrite = function() -- DEST/keep.txt exists
    offer { { path = "keep.txt", size = 5 } }
    if answer() == "FileAccept" then
        chunk(0, 0, "owned", true)
        complete(1, 5)
    end
    linger(2)
end

-- ---- sizes that lie
cases.more_bytes = function()
    offer { { path = "f.bin", size = 10 } }
    answer()
    chunk(0, 0, string.rep("x", 20), false)
    linger(2)
end
cases.fewer_then_complete = function()
    offer { { path = "f.bin", size = 100 } }
    answer()
    chunk(0, 0, string.rep("x", 50), false)
    complete(1, 100)
    linger(2)
end
cases.silent = function() -- stops talking in the middle of a file, but stays connected
    offer { { path = "f.bin", size = 100 } }
    answer()
    chunk(0, 0, string.rep("x", 50), false)
    tallow.sleep(15)
end
cases.silent_before_offer = function() -- pairs, then never offers anything, but stays connected
    local name, err = s:recv(15) -- returns when the receiver gives up and leaves
    say("after pairing: %s", tostring(name or err))
end
cases.fewer_last = function()
    offer { { path = "f.bin", size = 100 } }
    answer()
    chunk(0, 0, string.rep("x", 50), true)
    linger(2)
end
cases.huge_size = function() -- 4 EiB declared; a little data, then the end
    offer { { path = "huge.bin", size = 1 << 62 } }
    answer()
    local blk = string.rep("y", 256 * 1024)
    for i = 0, 7 do chunk(0, i * #blk, blk, false) end
    complete(1, 1 << 62)
    linger(2)
end
-- a file sent from offset 0 carries no hash: one is a protocol error
cases.hash_on_fresh = function()
    offer { { path = "f.bin", size = 5 } }
    answer()
    chunk(0, 0, "hello", true, EMPTY_HASH)
    linger(2)
end
-- hostile.py planted 1 MiB of a partial f.bin: the receiver resumes at 1 MiB; the hash of the
-- kept prefix the peer sends does not match, so the partial copy goes
cases.bad_prefix_hash = function()
    offer { { path = "f.bin", size = 2 * MiB } }
    local name, msg = answer()
    assert(name == "FileAccept" and msg.resume == varint(MiB), "receiver did not resume at 1 MiB")
    chunk(0, MiB, string.rep("b", MiB), true, EMPTY_HASH)
    linger(2)
end
-- the same, but the peer leaves the hash of the kept prefix out
cases.no_prefix_hash = function()
    offer { { path = "f.bin", size = 2 * MiB } }
    answer()
    chunk(0, MiB, string.rep("b", MiB), true)
    linger(2)
end
cases.size_over_int64 = function() refused_offer({ { path = "f.bin", sizeraw = varint(1 << 63) } }, { total = 1 }) end
cases.len_overflow_varint = function() -- path length as an 11-byte varint (beyond 64 bits)
    refused_offer({ { path = "x", plen = ("\xff"):rep(10) .. "\x01" } })
end
cases.len_negative = function() -- path length -1 (2^64-1): longer than anything that follows
    refused_offer({ { path = "x", plen = varint(-1) } })
end
cases.ten_million_entries = function() -- claims 10,000,000 entries, sends one
    refused_offer({ { path = "a.txt", size = 0 } }, { count = 10000000 })
end
cases.million_entries_short = function() -- claims 1,000,000 (under the cap), sends 3 bytes of it
    refused_offer({ { raw = "\1\0" } }, { count = 1000000 })
end

-- ---- offers in parts (a manifest larger than one frame): the receiver joins them
local function offer_parts(tid, m, step, count, total, stop_at)
    for at = 1, #m, step do
        if stop_at and at >= stop_at then return end
        assert(s:send_tx(tid, "FileOffer", { transfer_id = tid, kind = 0, count = count, total_size = total,
            manifest = m:sub(at, at + step - 1), more = at + step <= #m }))
    end
end
cases.offer_in_parts = function() -- an honest offer cut every 5 bytes, cuts inside names and varints
    local entries = { { path = "d", dir = true }, { path = "d/one.txt", size = 3 }, { path = "d/two.txt", size = 0 } }
    offer_parts(TID, manifest(entries), 5, 3, 3)
    if answer() == "FileAccept" then
        chunk(1, 0, "one", true)
        chunk(2, 0, "", true)
        complete(2, 3)
    end
    linger(2)
end
cases.parts_interrupted = function() -- half an offer, then another offer
    local m = manifest { { path = "a.txt", size = 0 }, { path = "b.txt", size = 0 } }
    offer_parts(TID, m, 4, 2, 0, 9)
    assert(s:send_tx(TID + 1, "FileOffer", { transfer_id = TID + 1, kind = 0, count = 1, total_size = 0,
        manifest = manifest { { path = "c.txt", size = 0 } } }))
    answer()
    linger(1)
end
cases.parts_other_key = function() -- the next part under the session key, not the transfer's
    local m = manifest { { path = "a.txt", size = 0 }, { path = "b.txt", size = 0 } }
    offer_parts(TID, m, 4, 2, 0, 5)
    assert(s:send("FileOffer", { transfer_id = TID, kind = 0, count = 2, total_size = 0,
        manifest = m:sub(5), more = false }))
    answer()
    linger(1)
end

-- ---- frames and messages that lie
cases.reordered_chunks = function()
    offer { { path = "f.bin", size = 20 } }
    answer()
    chunk(0, 10, string.rep("b", 10), true)
    chunk(0, 0, string.rep("a", 10), false)
    linger(2)
end
cases.chunk_after_last = function()
    offer { { path = "e.txt", size = 0 } }
    answer()
    chunk(0, 0, "", true)
    chunk(0, 0, "more", false)
    linger(2)
end
cases.chunk_after_complete = function()
    offer { { path = "e.txt", size = 0 } }
    answer()
    chunk(0, 0, "", true)
    complete(1, 0)
    chunk(0, 0, "late", true)
    chunk(7, 0, "later", true)
    linger(2)
end
cases.chunk_unknown_file = function()
    offer { { path = "f.bin", size = 5 } }
    answer()
    chunk(5, 0, "hello", true)
    linger(2)
end
cases.skip_a_file = function()
    offer { { path = "a.bin", size = 5 }, { path = "b.bin", size = 0 } }
    answer()
    chunk(1, 0, "", true)
    linger(2)
end
cases.complete_early = function()
    offer { { path = "a.bin", size = 5 } }
    answer()
    complete(1, 5)
    linger(2)
end
cases.unknown_type = function() -- a type nobody registered, then an honest transfer
    assert(s:send_tx(TID, varint(9999) .. varint(2) .. "\8\1"))
    offer { { path = "ok.txt", size = 0 } }
    answer()
    chunk(0, 0, "", true)
    complete(1, 0)
    linger(2)
end
cases.flood_messages = function() -- 96 MiB of session messages the receiver's script never reads
    offer { { path = "f.txt", size = 5 } }
    answer()
    local big = string.rep("x", MiB)
    for _ = 1, 96 do assert(s:send("ChatText", { text = big })) end
    chunk(0, 0, "hello", true)
    complete(1, 5)
    linger(3)
end
cases.malformed_message = function() -- a Chunk whose body length runs past the end, sealed properly
    offer { { path = "f.bin", size = 5 } }
    answer()
    assert(s:send_tx(TID, varint(11) .. varint(200) .. "\8\1"))
    linger(2)
end
cases.cross_transfer_key = function() -- a Chunk for our transfer, sealed under another transfer's key
    offer { { path = "f.bin", size = 5 } }
    answer()
    assert(s:send_tx(TID + 1, "Chunk", { transfer_id = TID, file_index = 0, offset = 0, data = "hello", last = true }))
    linger(2)
end
cases.session_key_chunk = function() -- a Chunk for our transfer under the session key
    offer { { path = "f.bin", size = 5 } }
    answer()
    assert(s:send("Chunk", { transfer_id = TID, file_index = 0, offset = 0, data = "hello", last = true }))
    linger(2)
end
cases.vanish = function() -- half a file, then leaves (the session closes in order)
    offer { { path = "f.bin", size = 1 << 20 } }
    answer()
    chunk(0, 0, string.rep("z", 300000), false)
    tallow.sleep(0.3)
    s:close()
    os.exit(0)
end
cases.vanish_abrupt = function() -- half a file, then the process is gone (no goodbye to the relay)
    offer { { path = "f.bin", size = 1 << 20 } }
    answer()
    chunk(0, 0, string.rep("z", 300000), false)
    tallow.sleep(0.3)
    os.exit(0)
end

local fn = cases[case] or error("unknown case " .. case)
fn()
s:close()
