-- Comcast's unknown user (captured shape).
return {
  name = "comcast: 550 5.1.1 Not our Customer (captured)",
  address = "nobody@comcast.net",
  dns = {
    ["comcast.net"] = { mx = { { 5, "mx1a1.comcast.net" }, { 10, "mx2c1.comcast.net" } } },
    ["mx1a1.comcast.net"] = { a = { "96.114.157.1" } },
    ["mx2c1.comcast.net"] = { a = { "96.114.157.2" } },
  },
  sessions = { { transcript = "transcripts/comcast-not-our-customer.txt" } },
  expect = { status = "undeliverable", reason = "mailbox_not_found",
             fields = { provider = "comcast", smtp_code = 550, smtp_enhanced = "5.1.1" }, absent = { "catch_all" } },
}
