-- Hostile: "Comcast block for spam" at RCPT: blocked, never undeliverable.
return {
  name = "comcast: BL block for spam is blocked",
  address = "alice@comcast.net",
  dns = {
    ["comcast.net"] = { mx = { { 5, "mx1a1.comcast.net" }, { 10, "mx2c1.comcast.net" } } },
    ["mx1a1.comcast.net"] = { a = { "96.114.157.1" } },
    ["mx2c1.comcast.net"] = { a = { "96.114.157.2" } },
  },
  sessions = {
    { banner = "220 resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net ESMTP server ready",
      replies = { RCPT = { "554 resimta-po-01v.sys.comcast.net resimta-po-01v.sys.comcast.net 192.0.2.1 Comcast block "
        .. "for spam. Please see http://postmaster.comcast.net/smtp-error-codes.php#BL000000" } } },
  },
  expect = { status = "unknown", reason = "blocked", fields = { provider = "comcast", smtp_code = 554 } },
}
