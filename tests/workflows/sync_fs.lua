-- tests/workflows/sync_fs.lua — tallow.fs on a scratch folder (run by sync_fs.sh): scan, the
-- manifest round trip, strict decode, remove_under's refusals, and the watcher's event kinds.
local tallow = require "tallow"
local fs = require "tallow.fs"
local root, outside = arg[1], arg[2]
local function sh(cmd) assert(os.execute(cmd), cmd) end
local function check(cond, what) if not cond then error("FAIL: " .. what, 2) end end

sh(("mkdir -p %s/a/b %s && echo hi >%s/a/b/x.txt && echo yo >%s/top.txt && echo keep >%s/precious")
    :format(root, outside, root, root, outside))
sh(("ln -s %s %s/link && ln -s %s %s/a/dirlink"):format(outside, root, outside, root))

-- scan: relative paths, folders first, symlinks skipped with a warning
local e, warnings = assert(fs.scan(root))
local paths = {}
for _, x in ipairs(e) do paths[#paths + 1] = x.path .. (x.dir and "/" or "") end
check(table.concat(paths, " ") == "a/ a/b/ a/b/x.txt top.txt", "scan order: " .. table.concat(paths, " "))
check(#warnings == 2, "two symlink warnings")
check(e[3].size == 3 and e[3].mtime_ns > 0 and e[3].mode & 0400 ~= 0, "entry fields")
check(select(3, fs.scan(root .. "/top.txt")) == "TALLOW_EINVAL", "scan of a file")

-- encode / decode round trip; the decoder is strict
local back = assert(fs.decode(fs.encode(e)))
for i = 1, #e do
    check(back[i].path == e[i].path and back[i].size == e[i].size and back[i].mtime_ns == e[i].mtime_ns
        and back[i].dir == e[i].dir, "round trip " .. e[i].path)
end
check(select(3, fs.decode(fs.encode({ { path = "../evil", size = 1 } }))) == "TALLOW_EUNSAFEPATH", "decode refuses ..")
check(select(3, fs.decode(fs.encode({ { path = "a", size = 1 }, { path = "A", size = 1 } }))) == "TALLOW_EUNSAFEPATH", "decode refuses case collisions")
check(fs.decode("\1\5garbage") == nil, "decode refuses garbage")

-- remove_under: never outside, never through a symlink
check(select(3, fs.remove_under(root, "../x")) == "TALLOW_EUNSAFEPATH", "refuses ..")
check(select(3, fs.remove_under(root, "/etc/passwd")) == "TALLOW_EUNSAFEPATH", "refuses absolute")
check(select(3, fs.remove_under(root, "link/precious")) == "TALLOW_EUNSAFEPATH", "refuses through a symlink")
check(select(3, fs.remove_under(root, "a/dirlink/precious")) == "TALLOW_EUNSAFEPATH", "refuses through a deeper symlink")
check(fs.remove_under(root, "nothing/here") == false, "absent is false")
check(fs.remove_under(root, "link") == true, "a symlink itself is removed")
check(io.open(outside .. "/precious") ~= nil, "the symlink's target is untouched")
check(fs.remove_under(root, "a") == true, "a folder with contents (and a symlink inside)")
check(io.open(outside .. "/precious") ~= nil, "target of the inner symlink untouched")
check(fs.stat(root .. "/a") == nil, "folder gone")
local st = assert(fs.stat(root .. "/top.txt"))
check(st.type == "file" and st.size == 3 and not st.dir, "stat")

-- watch: kinds, new sub-folders watched, renamed folders followed
local w <close> = assert(fs.watch(root))
local function collect(secs)
    local all = {}
    local evs = w:next(secs)
    while #evs > 0 do
        for _, ev in ipairs(evs) do all[#all + 1] = ev.kind .. ":" .. ev.path end
        evs = w:next(0.2)
    end
    return table.concat(all, " ")
end
check(#w:next(0.05) == 0, "timeout gives an empty list")
sh(("mkdir %s/n"):format(root))
check(collect(2) == "dir:n", "dir event")
sh(("echo 1 >%s/n/f; mv %s/top.txt %s/n/top2.txt"):format(root, root, root))
local got = collect(2)
check(got == "create:n/f modify:n/f rename_from:top.txt rename_to:n/top2.txt", "file events: " .. got)
sh(("mv %s/n %s/m && echo 2 >%s/m/g && rm %s/m/f"):format(root, root, root, root))
got = collect(2)
check(got == "rename_from:n rename_to:m create:m/g modify:m/g delete:m/f", "renamed folder still watched: " .. got)
sh(("rm -r %s/m"):format(root))
got = collect(2)
check(got:match("delete:m/g") and got:match("delete:m$"), "folder removal: " .. got)
w:close()
print("PASS")
