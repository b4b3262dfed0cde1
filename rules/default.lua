-- default.lua — the generic probing strategy, used for every address no other rule matches:
-- the shared SMTP strategy of validora/provider.lua with no provider wordings, the catch-all
-- probe on. The reply classifier lives in validora/classify.lua; `default.classify` is the
-- same function, for rules that `require "default"`.

local provider = require "validora.provider"

return provider.rule { name = "default" }
