-- test_script_error.lua: runs a failing script in a child `tallow run` and checks that it exits
-- non-zero and prints the message with a traceback.
local bin = os.getenv("TALLOW_BIN") or "tallow"
local tmp = os.tmpname()
local f = assert(io.open(tmp, "w"))
f:write('local tallow = require "tallow"\nlocal function inner() tallow.sleep(0.001); error("kaboom") end\ninner()\n')
f:close()
local p = assert(io.popen(bin .. " run " .. tmp .. " 2>&1; echo \"rc=$?\""))
local out = p:read("a")
p:close()
os.remove(tmp)
assert(out:find("kaboom"), out)
assert(out:find("stack traceback"), out)
assert(out:find("inner"), out)
assert(out:find("rc=1"), out)
print("script error ok")
