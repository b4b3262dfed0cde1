-- Hostile: Yandex's rate limit on every try: asked again at the lowered rate, then deferred.
local rl = "451 4.7.1 Ratelimit exceeded for mailbox. Try again later. 1733083200-aBcDeFgH1234"
return {
  name = "yandex: ratelimit exceeded, deferred after the rate tries",
  address = "alice@yandex.ru",
  options = { rate_deferral_tries = 2, greylist_delay = 30 },
  dns = {
    ["yandex.ru"] = { mx = { { 10, "mx.yandex.net" } } },
    ["mx.yandex.net"] = { a = { "77.88.21.1" } },
  },
  sessions = { { banner = "220 mx.yandex.net ESMTP", replies = { RCPT = { rl, rl } } } },
  expect = { status = "unknown", reason = "deferred", fields = { provider = "yandex", smtp_code = 451 } },
}
