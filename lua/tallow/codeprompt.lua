-- tallow.codeprompt: asks for a code phrase on a terminal, Tab completing its words (as
-- magic-wormhole does): "7-cro<Tab>" becomes "7-crossword-", a second Tab lists the candidates.
local tallow = require "tallow"
local M = {}

function M.ask(prompt)
    return tallow.code.prompt(prompt)
end

return M
