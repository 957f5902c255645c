-- (hidden) code-phrase words that start with the argument, one a line: for shell completion
if arg[1] == "--help" or arg[1] == "-h" then
    print("usage: tallow _words [PREFIX]\n\nPrints the code-phrase words starting with PREFIX, one a line (shell completion).")
    os.exit(0)
end
for _, w in ipairs(require("tallow").code.words(arg[1] or "")) do print(w) end
