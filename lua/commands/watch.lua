-- Keep a folder on the other side in step with this one, pushing every change as it happens
local tallow = require "tallow"
local fs = require "tallow.fs"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local folder = require "tallow.folder"
local relays = require "tallow.relays"

local spec = {
    usage = "tallow watch [options] DIR   |   tallow watch --receive [options] CODE DIR",
    summary = "Watch a folder and push every change to the peer (`tallow watch --receive CODE DIR`).",
    description = "Starts with a full sync (the receiver ends up a mirror: what the sender does not have is\n" ..
        "removed, unless --no-delete or the receiver's --keep), then pushes each batch of changes\n" ..
        "(creates, writes, renames, removals, new sub-folders) after --debounce ms of quiet. Each\n" ..
        "batch is its own transfer with its own key. If the connection drops, both sides reconnect\n" ..
        "with the same code and catch up with a full sync. Stop with Ctrl-C.",
    options = cli.with_relay_options(cli.options({
        { "--receive", help = "be the receiving side: CODE DIR" },
        { "--debounce", arg = "MS", number = true, int = true, min = 0, max = 60000, help = "quiet time that closes a batch", default = 200 },
        { "--no-delete", help = "do not propagate removals" },
        { "--keep", help = "receiver: never remove anything, even if the sender asks" },
    }, cli.code_options())),
    examples = {
        "tallow watch ~/project                        # prints a code; keeps pushing changes",
        "tallow watch --receive 7-crossword-rhythm-velvet ~/project-mirror",
        "tallow watch --debounce 50 --no-delete build/",
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)

local function stamp() return os.date("%H:%M:%S") end

-- Opens the session, retrying (1 s, 2 s, ... 5 s) while the relay or the peer is not there.
local function connect(code, initiator)
    local delay = 1
    while true do
        -- the room's relays in order (a list, or a fleet in DNS), each with the others to fail over to
        local list = common.relays_for(opts, code)
        ui.event("connecting", { relay = list[1] })
        local s, err, ecode = relays.try(list, tallow.session.open, common.on_next_relay) {
            code = code, password = opts.relay_password,
            transport = opts.transport, initiator = initiator,
        }
        if ecode == "TALLOW_ECODE" or ecode == "TALLOW_EVERSION" then -- one guess per code
            ui.die(tostring(err) .. "; not retrying", ecode)
        end
        if s then
            ui.event("paired", { path = s:info().path })
            if opts.verify then ui.say("Verification: %s", s:info().verify) end
            return s
        end
        ui.say("%s cannot connect (%s); retrying in %d s", stamp(), err, delay)
        tallow.sleep(delay)
        delay = math.min(delay + 1, 5)
    end
end

-- ---- receiving side: serve rounds for as long as the session lives, then reconnect
local function receive()
    if #args ~= 2 and #args ~= 1 then cli.usage_exit(spec) end
    local code = common.code_from(#args == 2 and args[1] or nil, opts)
    local dir = args[#args]
    while true do
        local s = connect(code, false)
        ui.say("%s connected; mirroring into %s", stamp(), dir)
        local _, err = folder.serve(s, dir, {
            keep = opts.keep, progress = "none",
            on_round = function(r)
                for _, n in ipairs(r.notices) do io.stderr:write("tallow: " .. n .. "\n") end
                for _, n in ipairs(r.errors) do io.stderr:write("tallow: " .. n .. "\n") end
                if r.error then io.stderr:write("tallow: " .. r.error .. "\n") end
                if r.full then
                    ui.say("%s synced: received %s", stamp(), folder.describe(r.changed, r.new, r.deleted))
                else
                    ui.say("%s received %d file%s; deleted %d", stamp(), r.files, r.files == 1 and "" or "s", r.deleted)
                end
                ui.event("batch", { side = "receiver", full = r.full, files = r.files, deleted = r.deleted,
                    wire_bytes = r.bytes, refused = r.refused })
            end,
        })
        s:close()
        ui.say("%s connection lost (%s); reconnecting", stamp(), tostring(err))
        ui.event("disconnected", { message = tostring(err) })
        tallow.sleep(0.5)
    end
end

-- ---- sending side

-- Turns a list of watcher events into what to send and what to remove. A path that is gone now
-- is removed; a path that exists is sent (a folder with all it holds); a path that was removed
-- and is back again is removed first (it may have changed type).
local function batch_of(dir, events)
    local touched, gone_once, order = {}, {}, {}
    for _, ev in ipairs(events) do
        if ev.kind == "overflow" then return nil end
        if not touched[ev.path] then
            touched[ev.path] = true
            order[#order + 1] = ev.path
        end
        if ev.kind == "delete" or ev.kind == "rename_from" then gone_once[ev.path] = true end
    end
    table.sort(order)
    local send, deletes, removed = {}, {}, {}
    local function parent_removed(p)
        while true do
            p = p:match("^(.*)/[^/]*$")
            if not p then return false end
            if removed[p] then return true end
        end
    end
    for _, p in ipairs(order) do
        local st = fs.stat(dir .. "/" .. p)
        if st and (st.type == "file" or st.type == "dir") then
            if gone_once[p] and not opts.no_delete then deletes[#deletes + 1] = p end
            send[#send + 1] = p
        elseif not st and not parent_removed(p) and not opts.no_delete then
            removed[p] = true
            deletes[#deletes + 1] = p
        end
    end
    return send, deletes
end

local function full_sync(s, dir, round)
    local plan, res, code = folder.full_round(s, dir, round, { delete = not opts.no_delete, progress = "none" })
    if not plan then return nil, res, code end
    ui.say("%s synced: sent %s", stamp(), folder.describe(plan.changed, plan.new, plan.deleted, res.wire_bytes, ui.size))
    ui.event("batch", { side = "sender", full = true, changed = plan.changed, new = plan.new,
        deleted = plan.deleted, wire_bytes = res.wire_bytes })
    return true
end

-- Waits for the next batch: the first event, then more until --debounce ms pass without one (at
-- most 10 debounce periods, so a folder that never rests still gets pushed). While nothing
-- happens it checks every second that the session is still there; returns nil when it is not.
local function next_batch(w, s)
    local debounce = math.max(opts.debounce, 10) / 1000
    while true do
        local evs = w:next(1)
        if #evs > 0 then
            local start = tallow.now()
            while tallow.now() - start < debounce * 10 do
                local more = w:next(debounce)
                if #more == 0 then break end
                table.move(more, 1, #more, #evs + 1, evs)
            end
            return evs
        end
        local name, _, code = s:recv(0)
        if not name and code ~= "TALLOW_ETIMEOUT" then return nil end
    end
end

local function send()
    if #args ~= 1 then cli.usage_exit(spec) end
    local dir = args[1]
    local st = fs.stat(dir)
    if not st or st.type ~= "dir" then ui.die("cannot watch " .. ui.printable(dir) .. ": not a folder") end
    require("tallow.preflight").sources({ dir }) -- what cannot be read is named before the code
    local w, err = fs.watch(dir) -- before the first sync, so that no change falls in between
    if not w then ui.die(err) end
    local code = common.new_code(opts)
    common.show_code(opts, code, "tallow watch --receive", " DIR")
    local round = 0
    while true do
        local s = connect(code, true)
        round = round + 1
        local ok, ferr = full_sync(s, dir, round)
        while ok do
            local evs = next_batch(w, s)
            if not evs then
                ferr = "the peer went away"
                break
            end
            round = round + 1
            local sendp, deletes = batch_of(dir, evs)
            if not sendp then
                ok, ferr = full_sync(s, dir, round) -- the watcher lost events: compare everything
            elseif #sendp > 0 or #deletes > 0 then
                local res, perr = folder.push(s, dir, round, sendp, deletes, "none")
                if res then
                    local sent = res.files - res.skipped
                    ui.say("%s pushed %d file%s (%s); deleted %d", stamp(), sent, sent == 1 and "" or "s",
                        ui.size(res.wire_bytes), #deletes)
                    ui.event("batch", { side = "sender", full = false, files = sent, deleted = #deletes,
                        wire_bytes = res.wire_bytes })
                else
                    local alive = select(3, s:recv(0)) == "TALLOW_ETIMEOUT"
                    if not alive then
                        ok, ferr = nil, perr
                    else
                        -- a file changed while it was read, say: settle, then compare everything
                        ui.say("%s batch failed (%s); doing a full sync", stamp(), tostring(perr))
                        tallow.sleep(math.max(opts.debounce, 10) / 1000)
                        round = round + 1
                        ok, ferr = full_sync(s, dir, round)
                    end
                end
            end
        end
        s:close()
        ui.say("%s connection lost (%s); reconnecting", stamp(), tostring(ferr))
        ui.event("disconnected", { message = tostring(ferr) })
        tallow.sleep(0.5)
    end
end

if opts.receive then receive() else send() end
