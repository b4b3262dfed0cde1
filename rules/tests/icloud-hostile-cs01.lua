-- Hostile: Apple refusing us ("[CS01] Message rejected due to local policy"): blocked.
return {
  name = "icloud: 554 5.7.1 [CS01] local policy is blocked",
  address = "alice@icloud.com",
  dns = {
    ["icloud.com"] = { mx = { { 10, "mx01.mail.icloud.com" }, { 20, "mx02.mail.icloud.com" } } },
    ["me.com"] = { mx = { { 10, "mx01.mail.icloud.com" } } },
    ["mx01.mail.icloud.com"] = { a = { "17.57.155.1" } },
    ["mx02.mail.icloud.com"] = { a = { "17.57.156.1" } },
  },
  sessions = {
    { banner = "220 mx01.mail.icloud.com ESMTP",
      replies = { RCPT = { "554 5.7.1 [CS01] Message rejected due to local policy. Please visit "
        .. "https://support.apple.com/en-us/HT204137" } } },
  },
  expect = { status = "unknown", reason = "blocked", fields = { provider = "icloud" } },
}
