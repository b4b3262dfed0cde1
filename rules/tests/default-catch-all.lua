-- The domain also takes the random local part of the catch-all probe: risky, catch_all.
return {
  name = "default: catch-all domain",
  address = "alice@catchall.test",
  dns = {
    ["catchall.test"] = { mx = { { 10, "mx.catchall.test" } } },
    ["mx.catchall.test"] = { a = { "192.0.2.26" } },
  },
  sessions = {
    { banner = "220 mx.catchall.test ESMTP Postfix",
      replies = { RCPT = { "250 2.1.5 Ok", "250 2.1.5 Ok" } } },
  },
  expect = { status = "risky", reason = "catch_all",
             fields = { catch_all = true, smtp_code = 250, provider = "default" } },
}
