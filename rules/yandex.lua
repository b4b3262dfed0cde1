-- yandex.lua — Yandex Mail (yandex.ru, ya.ru, yandex.com and Yandex 360 domains): mail
-- hosts under yandex.net, yandex.ru. SMTP: an unknown user is `550 5.7.1 No such user!` at
-- RCPT — a 5.7.1, which elsewhere means policy: read as mailbox_not_found only with its
-- wording. No catch-all probe for Yandex's own domains. docs/providers.md says why and how sure.

local provider = require "validora.provider"

return provider.rule {
  name = "yandex",
  match = { mx = { "*.yandex.net", "*.yandex.ru" } },
  consumer = { "yandex.ru", "yandex.com", "yandex.by", "yandex.kz", "yandex.ua", "ya.ru", "narod.ru" },
  slow_down = { "ratelimit" },
  replies = {
    { enhanced = "5.7.1", words = { "no such user" }, status = "undeliverable",
      reason = "mailbox_not_found" },
  },
}
