-- Barracuda's unknown user names Barracuda's own host (captured shape): not a block list
-- hit, as the generic words would read it. The same at antispamcloud.com.
return {
  name = "barracuda: 550 No such user (captured), at barracudanetworks.com and antispamcloud.com",
  verify = {
    { address = "nobody@cuda-corp.test",
      expect = { status = "undeliverable", reason = "mailbox_not_found",
                 fields = { provider = "barracuda", smtp_code = 550 } } },
    { address = "nobody@spamexp.test",
      expect = { status = "undeliverable", reason = "mailbox_not_found",
                 fields = { provider = "barracuda", mx = "mx.antispamcloud.com" } } },
  },
  dns = {
    ["cuda-corp.test"] = { mx = { { 10, "d123456a.ess.barracudanetworks.com" } } },
    ["spamexp.test"] = { mx = { { 10, "mx.antispamcloud.com" } } },
    ["d123456a.ess.barracudanetworks.com"] = { a = { "209.222.82.1" } },
    ["mx.antispamcloud.com"] = { a = { "185.201.16.1" } },
  },
  sessions = {
    { transcript = "transcripts/barracuda-no-such-user.txt" },
    { host = "mx.antispamcloud.com", banner = "220 mx.antispamcloud.com ESMTP",
      replies = { RCPT = { "550 No such user (nobody@spamexp.test)" } } },
  },
}
