-- Hostile: Barracuda Reputation lists our IP: blocked, and the breaker opens.
return {
  name = "barracuda: blocked using Barracuda Reputation is blocked, the next address deferred",
  verify = {
    { address = "alice@cuda-corp.test", expect = { status = "unknown", reason = "blocked", fields = { provider = "barracuda" } } },
    { address = "alice@spamexp.test", expect = { status = "unknown", reason = "deferred", fields = { provider = "barracuda" } } },
  },
  dns = {
    ["cuda-corp.test"] = { mx = { { 10, "d123456a.ess.barracudanetworks.com" } } },
    ["spamexp.test"] = { mx = { { 10, "mx.antispamcloud.com" } } },
    ["d123456a.ess.barracudanetworks.com"] = { a = { "209.222.82.1" } },
    ["mx.antispamcloud.com"] = { a = { "185.201.16.1" } },
  },
  sessions = {
    { banner = "220 d123456a.ess.barracudanetworks.com ESMTP",
      replies = { RCPT = { "554 Service unavailable; Client host [192.0.2.1] blocked using Barracuda Reputation, "
        .. "see http://www.barracudanetworks.com/reputation/?r=1&ip=192.0.2.1" } } },
  },
}
