-- Mimecast's greylisting (451 Internal resource temporarily unavailable), captured on the
-- first session, on every try: waited out greylist_tries times, then unknown/greylisted.
return {
  name = "mimecast: 451 internal resource greylisting, gives up after the tries",
  address = "grey@mimecast-corp.test",
  options = { reuse = false, greylist_tries = 3 },
  dns = {
    ["mimecast-corp.test"] = { mx = { { 10, "eu-smtp-inbound-1.mimecast.com" }, { 20, "eu-smtp-inbound-2.mimecast.com" } } },
    ["eu-smtp-inbound-1.mimecast.com"] = { a = { "195.130.217.1" } },
    ["eu-smtp-inbound-2.mimecast.com"] = { a = { "195.130.217.2" } },
  },
  sessions = {
    { transcript = "transcripts/mimecast-greylisted.txt" },
    { replies = { RCPT = "451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451" } },
    { replies = { RCPT = "451 Internal resource temporarily unavailable - https://community.mimecast.com/docs/DOC-1369#451" } },
  },
  expect = { status = "unknown", reason = "greylisted", fields = { provider = "mimecast", smtp_code = 451, attempts = 3 } },
}
