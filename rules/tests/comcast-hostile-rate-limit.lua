-- Hostile: Comcast's rate limit (#RL code), then accepted on the retry: asked again at once
-- at the lowered rate, no greylist wait, and no catch-all probe on comcast.net.
return {
  name = "comcast: RL rate limit, accepted on the retry",
  address = "alice@comcast.net",
  options = { greylist_delay = 30 },
  dns = {
    ["comcast.net"] = { mx = { { 5, "mx1a1.comcast.net" }, { 10, "mx2c1.comcast.net" } } },
    ["mx1a1.comcast.net"] = { a = { "96.114.157.1" } },
    ["mx2c1.comcast.net"] = { a = { "96.114.157.2" } },
  },
  sessions = {
    { banner = "220 resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net ESMTP server ready",
      replies = { RCPT = { "421 resimta-po-01v.sys.comcast.net 192.0.2.1 rate limit exceeded. Please see "
        .. "http://postmaster.comcast.net/smtp-error-codes.php#RL000001\nclose" } } },
    { banner = "220 resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net ESMTP server ready",
      replies = { RCPT = { "250 2.1.5 <alice@comcast.net> recipient ok" } } },
  },
  expect = { status = "deliverable", reason = "accepted", fields = { provider = "comcast", attempts = 2 },
             absent = { "catch_all" } },
}
