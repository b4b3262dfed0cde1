-- GMX's unknown user (captured shape: 550 without an enhanced code) and WEB.DE's.
return {
  name = "gmx: 550 mailbox unavailable at gmx.net (captured) and web.de",
  verify = {
    { address = "nobody@gmx.net",
      expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { provider = "gmx", smtp_code = 550 } } },
    { address = "nobody@web.de",
      expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { provider = "gmx", mx = "mx-ha03.web.de" } } },
  },
  dns = {
    ["gmx.net"] = { mx = { { 10, "mx00.emig.gmx.net" }, { 20, "mx01.emig.gmx.net" } } },
    ["web.de"] = { mx = { { 100, "mx-ha03.web.de" } } },
    ["mx00.emig.gmx.net"] = { a = { "212.227.15.1" } },
    ["mx01.emig.gmx.net"] = { a = { "212.227.17.1" } },
    ["mx-ha03.web.de"] = { a = { "212.227.15.41" } },
  },
  sessions = {
    { transcript = "transcripts/gmx-mailbox-unavailable.txt" },
    { host = "mx-ha03.web.de", banner = "220 web.de (mrweb001) Nemesis ESMTP Service ready",
      replies = { RCPT = { "550 Requested action not taken: mailbox unavailable" } } },
  },
}
