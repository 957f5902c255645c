-- push-build.lua: push a build output folder to another machine whenever a build finishes.
--
--   tallow run examples/scripts/push-build.lua --code 7-build-push-phrase build/out
--   (other machine)  tallow watch --receive 7-build-push-phrase /srv/www
--
-- Unlike `tallow watch`, which pushes every change after 200 ms, this waits until the folder has
-- been quiet for --settle seconds (a build writes many files over a while; we want its end, not
-- every intermediate), ignores files matching --ignore patterns (Lua patterns, e.g. "%.o$",
-- "%.tmp$"), and then pushes one round: the changed files and the removals. The receiving side is
-- the stock `tallow watch --receive`, which speaks the same protocol (tallow.folder).
local tallow = require "tallow"
local fs = require "tallow.fs"
local cli = require "tallow.cli"
local ui = require "tallow.ui"
local common = require "tallow.common"
local folder = require "tallow.folder"

local spec = {
    usage = "tallow run push-build.lua [options] DIR",
    summary = "Push DIR to the peer after each build (when DIR has been quiet for --settle seconds).",
    options = cli.with_relay_options {
        { "--code", arg = "CODE", help = "code phrase (both sides use it again after a reconnect)", env = "TALLOW_CODE" },
        { "--settle", arg = "SECONDS", number = true, help = "quiet time that marks the end of a build", default = 1 },
        { "--ignore", arg = "PATTERN", many = true, help = "Lua pattern of paths never pushed" },
        { "--once", help = "exit after the first push that follows a change (for scripts and tests)" },
    },
}
local opts, args = cli.parse(spec, arg)
ui.json = opts.json
common.load_plugins(opts)
local dir = args[1]
if not dir then
    io.stderr:write(cli.usage(spec) .. "\n")
    os.exit(2)
end

local function ignored(path)
    for _, pat in ipairs(opts.ignore) do
        if path:match(pat) then return true end
    end
    return false
end

-- step 1: watch first, so that nothing written during the first sync is missed
local w = assert(fs.watch(dir))
local code = common.new_code(opts)
if not opts.code then ui.say("On the other machine run:  tallow watch --receive %s DIR", code) end

-- step 2: the full sync, minus ignored files (and removing them on the other side: they are not ours)
local function full(s, round)
    local theirs = assert(folder.request_manifest(s, round))
    local mine = {}
    for _, e in ipairs((folder.scan(dir))) do
        if not ignored(e.path) then mine[#mine + 1] = e end
    end
    local plan = folder.plan(mine, theirs, true)
    -- a listed folder would bring all it holds, ignored files too: list a folder only when it
    -- is empty here; the files bring the folders on their way
    local has_child, send = {}, {}
    for _, e in ipairs(mine) do
        local parent = e.path:match("^(.*)/[^/]*$")
        if parent then has_child[parent] = true end
    end
    local isdir = {}
    for _, e in ipairs(mine) do isdir[e.path] = e.dir end
    for _, p in ipairs(plan.send) do
        if not (isdir[p] and has_child[p]) then send[#send + 1] = p end
    end
    local res = assert(folder.push(s, dir, round, send, plan.deletes, "none"))
    ui.say("%s pushed %s", os.date("%H:%M:%S"), folder.describe(plan.changed, plan.new, plan.deleted, res.wire_bytes, ui.size))
    return plan
end

-- step 3: wait for a build to end: a first change, then --settle seconds without any
local function wait_for_build()
    local changed = false
    while true do
        local evs = w:next(changed and opts.settle or nil)
        if #evs == 0 then return end
        for _, ev in ipairs(evs) do
            if not ignored(ev.path) then changed = true end
        end
    end
end

local s = common.open(opts, code, true)
local round = 1
full(s, round)
while true do
    wait_for_build()
    round = round + 1
    -- a full round each time: a build touches many files, and comparing size+mtime is cheap
    full(s, round)
    if opts.once then break end
end
s:close()
