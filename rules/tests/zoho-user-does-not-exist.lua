-- Zoho's unknown user (captured shape); a custom domain on Zoho gets the catch-all probe,
-- zoho.com does not.
return {
  name = "zoho: 550 5.1.1 User does not exist (captured); custom domain probed",
  verify = {
    { address = "nobody@zoho.com",
      expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { provider = "zoho", smtp_enhanced = "5.1.1" } } },
    { address = "alice@zoho-corp.test",
      expect = { status = "deliverable", reason = "accepted", fields = { provider = "zoho", catch_all = false } } },
  },
  dns = {
    ["zoho.com"] = { mx = { { 10, "mx.zoho.com" }, { 20, "mx2.zoho.com" } } },
    ["zoho-corp.test"] = { mx = { { 10, "mx.zoho.eu" } } },
    ["mx.zoho.com"] = { a = { "204.141.33.1" } },
    ["mx2.zoho.com"] = { a = { "204.141.33.2" } },
    ["mx.zoho.eu"] = { a = { "185.20.209.1" } },
  },
  sessions = {
    { transcript = "transcripts/zoho-user-does-not-exist.txt" },
    { banner = "220 mx.zoho.eu SMTP Server ready",
      replies = { RCPT = { "250 Recipient <alice@zoho-corp.test> OK", "550 5.1.1 User does not exist - <x@zoho-corp.test>" } } },
  },
}
