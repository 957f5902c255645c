-- tallow.cli: command-line parsing for command scripts, with --help generated from the spec.
--
--   local opts, args = cli.parse({
--       usage = "tallow send [options] FILE...",
--       summary = "Send files to the peer who has the code",
--       options = {
--           { "--relay", arg = "HOST:PORT", help = "relay to meet at", env = "TALLOW_RELAY" },
--           { "--yes", "-y", help = "accept without asking" },
--       },
--   }, arg)
--
-- Flags without `arg` are booleans. Repeatable options (`many = true`) collect a list.
-- Unknown options print the usage and exit 2; --help prints it and exits 0.
local M = {}

local function key_of(o)
    return (o[1]:gsub("^%-%-", ""):gsub("%-", "_"))
end

function M.usage(spec)
    local out = { "usage: " .. spec.usage, "", spec.summary or "" }
    if spec.description then out[#out + 1] = "" out[#out + 1] = spec.description end
    out[#out + 1] = ""
    out[#out + 1] = "options:"
    for _, o in ipairs(spec.options) do
        local names = o[1] .. (o[2] and (", " .. o[2]) or "") .. (o.arg and (" " .. o.arg) or "")
        local help = o.help or ""
        if o.min and o.max then help = help .. string.format(" (%s to %s)", o.min, o.max) end
        if o.env then help = help .. " [env " .. o.env .. "]" end
        local d = o.default ~= nil and o.default or o.shown_default
        if d ~= nil then help = help .. " (default " .. tostring(d) .. ")" end
        out[#out + 1] = string.format("  %-26s %s", names, help)
    end
    out[#out + 1] = string.format("  %-26s %s", "--help, -h", "show this help")
    local env = {}
    for _, o in ipairs(spec.options) do
        if o.env then env[#env + 1] = string.format("  %-26s %s", o.env, "same as " .. o[1]) end
    end
    local extra = {}
    for _, o in ipairs(spec.options) do
        if o[1] == "--relay" then extra = M.relay_environment end
    end
    for _, e in ipairs(extra) do env[#env + 1] = string.format("  %-26s %s", e[1], e[2]) end
    for _, e in ipairs(spec.environment or {}) do env[#env + 1] = string.format("  %-26s %s", e[1], e[2]) end
    if #env > 0 then
        out[#out + 1] = ""
        out[#out + 1] = "environment:"
        for _, l in ipairs(env) do out[#out + 1] = l end
    end
    if spec.examples then
        out[#out + 1] = ""
        out[#out + 1] = "examples:"
        for _, e in ipairs(spec.examples) do out[#out + 1] = "  " .. e end
    end
    out[#out + 1] = ""
    out[#out + 1] = "exit status: 0 done, 1 error, 2 usage, 3 refused or declined, 4 code mismatch"
    return table.concat(out, "\n")
end

-- Wrong arguments: the usage on stderr, exit status 2.
function M.usage_exit(spec)
    io.stderr:write(M.usage(spec) .. "\n")
    os.exit(2)
end

-- A number option's range: `min`, `max` and `int` (a whole number) in its spec. Out of range:
-- what is allowed and where to read more, exit 2, before anything else happens.
function M.check_range(o, v, spec)
    local bad
    if o.int and math.type(v) ~= "integer" and v ~= math.floor(v) then
        bad = "a whole number"
    elseif (o.min and v < o.min) or (o.max and v > o.max) then
        bad = o.min and o.max and string.format("between %s and %s", o.min, o.max)
            or o.min and string.format("at least %s", o.min) or string.format("at most %s", o.max)
    end
    if bad then
        io.stderr:write(string.format("tallow: %s must be %s, not %s%s (see %s --help)\n", o[1], bad,
            tostring(v), o.why and ("; " .. o.why) or "", (spec.usage or "tallow"):match("^(tallow %S+)") or "tallow"))
        os.exit(2)
    end
end

function M.parse(spec, argv)
    local byname, opts, args = {}, {}, {}
    for _, o in ipairs(spec.options) do
        byname[o[1]] = o
        if o[2] then byname[o[2]] = o end
        local k = key_of(o)
        if o.many then opts[k] = {} end
        if o.env and os.getenv(o.env) and os.getenv(o.env) ~= "" then
            local v = os.getenv(o.env)
            if o.arg then opts[k] = o.many and { v } or v else opts[k] = v ~= "0" end
        elseif o.default ~= nil then
            opts[k] = o.default
        end
    end
    local i, n = 1, #argv
    local rest = false
    while i <= n do
        local a = argv[i]
        if rest or a == "-" or a:sub(1, 1) ~= "-" then
            args[#args + 1] = a
        elseif a == "--" then
            rest = true
        elseif a == "--help" or a == "-h" then
            print(M.usage(spec))
            os.exit(0)
        else
            local name, val = a:match("^(%-%-[^=]+)=(.*)$")
            name = name or a
            local o = byname[name]
            if not o then
                io.stderr:write("tallow: unknown option " .. name .. "\n" .. M.usage(spec) .. "\n")
                os.exit(2)
            end
            local k = key_of(o)
            if o.arg then
                if not val then
                    i = i + 1
                    val = argv[i]
                    if not val then
                        io.stderr:write("tallow: " .. name .. " needs " .. o.arg .. "\n")
                        os.exit(2)
                    end
                end
                if o.number then
                    local v = tonumber(val)
                    if not v then
                        io.stderr:write("tallow: " .. name .. " needs a number, not '" .. val .. "'\n")
                        os.exit(2)
                    end
                    M.check_range(o, v, spec)
                    val = v
                end
                if o.many then
                    if opts[k] and opts[k]._env then opts[k] = {} end
                    table.insert(opts[k], val)
                else
                    opts[k] = val
                end
            else
                if val then
                    io.stderr:write("tallow: " .. name .. " takes no value\n")
                    os.exit(2)
                end
                opts[k] = true
            end
        end
        i = i + 1
    end
    return opts, args
end

-- Options every relay-connected command takes. The policy flags are also read by the runner
-- (in C) before the script starts, so a script cannot loosen them.
-- Environment variables every relay-connected command reads besides its options' own.
M.relay_environment = {
    { "TALLOW_RELAYS", "several relays side by side (a,b,...), when --relay is not given" },
    { "TALLOW_P2P_TIMEOUT", "seconds the direct-path attempt may take (default 5)" },
    { "TALLOW_OFFER_TIMEOUT", "seconds a receiver waits for the paired sender's offer (default 120, 0: no limit)" },
    { "TALLOW_STALL_TIMEOUT", "seconds either side waits for a silent peer mid-transfer (default 120, 0: no limit)" },
    { "TALLOW_ALLOW_LOOPBACK", "1: same as --allow-loopback" },
    { "TALLOW_LOG", "warn, info or debug: what the core logs on stderr" },
}

M.relay_options = {
    { "--relay", arg = "HOST:PORT", help = "relay to meet at (tls://HOST:PORT: over TLS)", env = "TALLOW_RELAY", default = "127.0.0.1:4433" },
    { "--relay-pin", arg = "SHA256", help = "trust a tls:// relay by its key (base64 or hex SHA-256 of its SubjectPublicKeyInfo) instead of the system's CAs", env = "TALLOW_RELAY_PIN" },
    { "--relay-password", arg = "PASS", help = "password of a private relay", env = "TALLOW_RELAY_PASSWORD" },
    { "--no-p2p", help = "never go direct: every byte through the relay", env = "TALLOW_NO_P2P" },
    { "--proxy", arg = "socks5://HOST:PORT", help = "reach the relay through a SOCKS5 proxy (implies --no-p2p)", env = "TALLOW_PROXY" },
    { "--tor", help = "reach the relay through Tor at 127.0.0.1:9050 (implies --no-p2p)" },
    { "--stun", arg = "HOST:PORT", many = true, help = "STUN server for the direct path, repeatable (default: the relay's address)" },
    { "--allow-loopback", help = "allow loopback candidates (tests on one machine)" },
    { "--transport", arg = "NAME", help = "transport plugin to meet through", default = "relay" },
    { "--plugin", arg = "PATH", many = true, help = "load an extra plugin first" },
    { "--json", help = "print JSON events, one per line, instead of a progress bar" },
}

-- The code-phrase options of a command whose side can make the code (send, chat, sync, ...);
-- `side` names that side in the help, e.g. "sending side".
function M.code_options(side)
    local who = side and (" (" .. side .. ")") or ""
    return {
        { "--code", arg = "CODE", help = "use this code phrase instead of a new one" .. who, env = "TALLOW_CODE" },
        { "--words", arg = "N", number = true, int = true, min = 2, max = 8, help = "secret words in a generated code", default = 3 },
        { "--verify", help = "show a verification string both sides can compare" },
    }
end

-- Concatenates option lists: cli.options(own, cli.code_options(), ...).
function M.options(...)
    local all = {}
    for _, list in ipairs({ ... }) do
        for _, o in ipairs(list) do all[#all + 1] = o end
    end
    return all
end

function M.with_relay_options(options)
    local all = {}
    for _, o in ipairs(options) do all[#all + 1] = o end
    for _, o in ipairs(M.relay_options) do all[#all + 1] = o end
    return all
end

return M
