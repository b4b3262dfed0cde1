-- mimecast.lua — Mimecast's gateways (mail hosts under mimecast.com), in front of company
-- domains. SMTP with the catch-all probe (a company may take every address). Mimecast
-- greylists with `451 Internal resource temporarily unavailable`: waited out like any
-- greylisting, then unknown/greylisted. Its replies carry a link to its code list
-- (community.mimecast.com/docs/DOC-1369#NNN). docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "mimecast",
  match = { mx = { "*.mimecast.com" } },
  -- Mimecast's published 10 connections and 100 a connection are above our defaults; one
  -- key for every customer behind Mimecast, so the top rate is lower than the default's.
  limits = { provider = { rcpt_per_minute = 600 } },
  block = {
    "email rejected due to security policies", -- 554: our IP's reputation
    "invalid helo name", "access denied - invalid", -- our HELO, our sending host
  },
  replies = {
    { code = 451, words = { "internal resource temporarily unavailable" },
      status = "unknown", reason = "greylisted", retry = true, signal = "none" },
    { words = { "invalid recipient" }, status = "undeliverable", reason = "mailbox_not_found" },
    -- a recipient's own block list (User Entry) or policy: about us and that company only
    { words = { "envelope blocked", "administrative prohibition" },
      status = "unknown", reason = "blocked", signal = "none" },
    -- the domain is not (yet) set up at Mimecast: nothing about the mailbox
    { words = { "open relay not allowed" }, status = "unknown", reason = "temporary_failure",
      signal = "none" },
  },
}
