-- Hostile: GMX's policy refusal (multi-line, a postmaster case link): blocked.
return {
  name = "gmx: reject due to policy restrictions is blocked",
  address = "alice@gmx.net",
  dns = {
    ["gmx.net"] = { mx = { { 10, "mx00.emig.gmx.net" }, { 20, "mx01.emig.gmx.net" } } },
    ["web.de"] = { mx = { { 100, "mx-ha03.web.de" } } },
    ["mx00.emig.gmx.net"] = { a = { "212.227.15.1" } },
    ["mx01.emig.gmx.net"] = { a = { "212.227.17.1" } },
    ["mx-ha03.web.de"] = { a = { "212.227.15.41" } },
  },
  sessions = {
    { banner = "220 gmx.net (mxgmx017) Nemesis ESMTP Service ready",
      replies = { RCPT = { "554-Transaction failed\n554-Reject due to policy restrictions.\n"
        .. "554 For explanation visit https://postmaster.gmx.net/en/case?c=r0601&i=ip&v=192.0.2.1&r=1MxYz" } } },
  },
  expect = { status = "unknown", reason = "blocked", fields = { provider = "gmx", smtp_code = 554 } },
}
