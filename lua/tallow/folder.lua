-- tallow.folder: the folder-sync protocol `tallow sync` and `tallow watch` share, as small steps
-- a script can reuse. One round, always started by the side that has the folder (the source):
--
--   source -> ManifestExchange{flags=REQUEST}          "tell me what you have" (full rounds only)
--   mirror -> ManifestExchange{manifest=its entries}    path, size, mtime of every entry
--   source -> SyncDeleteList{paths="a\0b/c\0..."}      what the mirror removes first (may be empty)
--   source -> FileOffer ...                             the changed and new entries (may be empty),
--                                                       streamed by the transfer engine
--
-- Nothing has to fit one message (frames are 2 MiB): the mirror's manifest goes as slices of at
-- most PART bytes, each ManifestExchange but the last with flags MORE, joined before decoding
-- (at most MAX_BYTES in all); a long SyncDeleteList goes as several of whole paths, all but the
-- last with more = true; the engine splits a long offer itself.
--
-- Paths are relative to the folder on both sides: the source folder's own name is never part of
-- them, so `a/b.txt` under the source lands at DIR/a/b.txt on the mirror. A file counts as
-- unchanged when size and mtime are equal (the engine also skips those); the mirror overwrites
-- changed files. Removals never leave the mirror's folder and never go through a symlink
-- (tallow.fs.remove_under). Partial files of an interrupted transfer (*.tallow-part) are not
-- listed, so they are neither sent nor removed: the next round resumes them.
local tallow = require "tallow"
local fs = require "tallow.fs"
local M = {
    REQUEST = 1, MORE = 2,
    PART = 1 << 20,          -- bytes of a manifest or delete list per message
    MAX_BYTES = 256 << 20,   -- a mirror manifest, all parts (the engine's bound on an offer)
}

local function is_partial(path)
    return path:match("%.tallow%-part$") ~= nil
end

-- Entries of dir (tallow.fs.scan without partial files) and a map path -> entry.
function M.scan(dir)
    local entries, warnings = fs.scan(dir)
    if not entries then return nil, warnings end
    local list, map = {}, {}
    for _, e in ipairs(entries) do
        if not is_partial(e.path) then
            list[#list + 1] = e
            map[e.path] = e
        end
    end
    return list, map, warnings
end

local function index(entries)
    local map = {}
    for _, e in ipairs(entries) do map[e.path] = e end
    return map
end

local function under_any(path, set)
    local p = path
    while true do
        p = p:match("^(.*)/[^/]*$")
        if not p then return false end
        if set[p] then return true end
    end
end

-- What a full round must do to make theirs (the mirror's entries) equal to mine.
-- Returns {send = {paths}, deletes = {paths}, changed = n, new = n, new_dirs = n,
--          deleted = n (entries removed, contents of removed folders included), bytes = n}.
-- Entries whose type differs (file here, folder there) are removed first even without delete.
function M.plan(mine, theirs, delete)
    local have = index(theirs)
    local ours = index(mine)
    local p = { send = {}, deletes = {}, changed = 0, new = 0, new_dirs = 0, deleted = 0, bytes = 0 }
    local del = {}
    for _, e in ipairs(mine) do
        local t = have[e.path]
        if not t then
            p.send[#p.send + 1] = e.path
            if e.dir then p.new_dirs = p.new_dirs + 1 else p.new = p.new + 1; p.bytes = p.bytes + e.size end
        elseif t.dir ~= e.dir then
            del[e.path] = true
            p.send[#p.send + 1] = e.path
            if not e.dir then p.changed = p.changed + 1; p.bytes = p.bytes + e.size end
        elseif not e.dir and (t.size ~= e.size or t.mtime_ns ~= e.mtime_ns) then
            p.send[#p.send + 1] = e.path
            p.changed = p.changed + 1
            p.bytes = p.bytes + e.size
        end
    end
    if delete then
        for _, t in ipairs(theirs) do
            if not ours[t.path] then del[t.path] = true end
        end
    end
    -- count every entry that goes, but send only the top-most paths (removal is recursive)
    for _, t in ipairs(theirs) do
        if del[t.path] or under_any(t.path, del) then
            p.deleted = p.deleted + 1
        end
    end
    for _, t in ipairs(theirs) do
        if del[t.path] and not under_any(t.path, del) then p.deletes[#p.deletes + 1] = t.path end
    end
    return p
end

function M.pack_paths(paths) return table.concat(paths, "\0") end

-- paths packed into strings of at most PART bytes (one path longer than that is alone)
local function pack_parts(paths)
    local parts, cur, size = {}, {}, 0
    for _, p in ipairs(paths) do
        if size > 0 and size + #p + 1 > M.PART then
            parts[#parts + 1] = table.concat(cur, "\0")
            cur, size = {}, 0
        end
        cur[#cur + 1] = p
        size = size + #p + 1
    end
    parts[#parts + 1] = table.concat(cur, "\0")
    return parts
end

function M.unpack_paths(bytes)
    local out = {}
    for p in (bytes or ""):gmatch("[^%z]+") do out[#out + 1] = p end
    return out
end

-- Source side: asks for the mirror's manifest. Returns its entries, or nil, message, code.
function M.request_manifest(s, round, timeout)
    local ok, err, code = s:send("ManifestExchange", { transfer_id = round, flags = M.REQUEST, manifest = "" })
    if not ok then return nil, err, code end
    local parts, size = {}, 0
    while true do
        local name, m, c = s:recv(timeout)
        if not name then return nil, m, c end
        if name == "ManifestExchange" and m.flags & M.REQUEST == 0 then
            parts[#parts + 1] = m.manifest
            size = size + #m.manifest
            if size > M.MAX_BYTES then
                return nil, string.format("the mirror's manifest is larger than %d bytes", M.MAX_BYTES), "TALLOW_ETOOBIG"
            end
            if m.flags & M.MORE == 0 then
                local theirs, derr, dcode = fs.decode(table.concat(parts))
                if not theirs then return nil, "the mirror sent a bad manifest: " .. derr, dcode end
                return theirs
            end
        end
        -- anything else (a Ping, say) is not for us
    end
end

-- Source side: removals first, then the files (an empty offer when there is nothing to send, so
-- that both sides end the round at the same point). Returns the transfer summary or nil, msg, code.
function M.push(s, dir, round, send, deletes, progress)
    local parts = pack_parts(deletes)
    for i, paths in ipairs(parts) do
        local ok, err, code = s:send("SyncDeleteList", { transfer_id = round, paths = paths, more = i < #parts })
        if not ok then return nil, err, code end
    end
    return s:send_files(nil, { base = dir, only = send, progress = progress })
end

-- Source side: one full round. Returns plan, summary | nil, message, code.
function M.full_round(s, dir, round, opts)
    local theirs, err, code = M.request_manifest(s, round, opts.timeout)
    if not theirs then return nil, err, code end
    local mine, _, warnings = M.scan(dir)
    if not mine then return nil, _ end
    local plan = M.plan(mine, theirs, opts.delete)
    plan.warnings = warnings
    local res, perr, pcode = M.push(s, dir, round, plan.send, plan.deletes, opts.progress)
    if not res then return nil, perr, pcode end
    return plan, res
end

-- path -> number of entries below it, for every folder of a listing (path -> entry map): one
-- pass, so that counting what a removed folder held costs nothing per removal
local function count_inside(map)
    local n = {}
    for q in pairs(map) do
        local p = q
        while true do
            p = p:match("^(.*)/[^/]*$")
            if not p then break end
            n[p] = (n[p] or 0) + 1
        end
    end
    return n
end

-- Mirror side: answers requests, applies removals and receives offers until `until_offers`
-- offers were handled (nil: forever) or the session ends. on_round(report) is called after each
-- offer with {files, changed, new, deleted, refused, bytes, seconds, notices, errors}.
-- Returns true after the requested rounds, or nil, message, code when the session ended.
function M.serve(s, dir, opts)
    local before = {} -- mirror entries as of the last manifest we sent (changed vs new)
    local inside -- folder -> entries under it in `before`, counted once when a folder goes
    local deleted, errors = 0, {}
    local asked = false -- this round began with a manifest request (a full round)
    local rounds = 0
    while not opts.rounds or rounds < opts.rounds do
        local name, m, code = s:recv(opts.timeout)
        if not name then return nil, m, code end
        if name == "ManifestExchange" and m.flags & M.REQUEST ~= 0 then
            local mine, map = M.scan(dir)
            if not mine then
                mine, map = {}, {}
            end
            before, asked, inside = map, true, nil
            local enc = fs.encode(mine)
            for at = 1, math.max(#enc, 1), M.PART do
                local last = at + M.PART > #enc
                local ok, err, c = s:send("ManifestExchange", { transfer_id = m.transfer_id,
                    flags = last and 0 or M.MORE, manifest = enc:sub(at, at + M.PART - 1) })
                if not ok then return nil, err, c end
            end
        elseif name == "SyncDeleteList" then
            for _, p in ipairs(M.unpack_paths(m.paths)) do
                if opts.keep then
                    errors[#errors + 1] = "kept " .. p .. " (--keep)"
                else
                    local was = before[p]
                    local ok, err = fs.remove_under(dir, p)
                    if ok == nil then
                        errors[#errors + 1] = err
                    elseif ok then
                        -- count what went: the entry and, for a folder, what we knew under it
                        local n = 1
                        if was and was.dir then
                            inside = inside or count_inside(before)
                            n = n + (inside[p] or 0)
                        end
                        deleted = deleted + n
                    end
                end
            end
        elseif name == "FileOffer" then
            local full = asked
            local changed, new = 0, 0
            local offered = fs.decode(m.manifest) or {}
            local res, err, ecode, partial = s:receive_files(m, { dest = dir, overwrite = true, progress = opts.progress })
            local sum = res or partial or {}
            if full then
                for _, e in ipairs(offered) do
                    local b = before[e.path]
                    if e.dir then
                        -- folders are not counted
                    elseif not b then
                        new = new + 1
                    elseif b.dir or b.size ~= e.size or b.mtime_ns ~= e.mtime_ns then
                        changed = changed + 1
                    end
                end
            end
            rounds = rounds + 1
            local report = {
                full = full, files = sum.files or 0, changed = changed, new = new, deleted = deleted,
                refused = sum.refused or 0, bytes = sum.wire_bytes or 0, seconds = sum.seconds or 0,
                notices = sum.notices or {}, errors = errors, error = not res and err or nil, code = ecode,
            }
            before, deleted, errors, asked, inside = {}, 0, {}, false, nil
            if opts.on_round then opts.on_round(report) end
        end
    end
    return true
end

-- Human summary of a plan (source side): "sent 10 changed, 5 new (1.2 MiB); deleted 5".
function M.describe(changed, new, deleted, bytes, size)
    local s = string.format("%d changed, %d new", changed, new)
    if bytes and size then s = s .. " (" .. size(bytes) .. ")" end
    return s .. string.format("; deleted %d", deleted)
end

return M
