-- Greylisting that never clears: after greylist_tries RCPTs the verdict is unknown/greylisted.
local postgrey = "450 4.2.0 <carol@grey.test>: Recipient address rejected: Greylisted, "
  .. "see http://postgrey.schweikert.ch/help/grey.test.html"

return {
  name = "default: greylisted until the tries run out",
  address = "carol@grey.test",
  options = { greylist_tries = 3 },
  dns = {
    ["grey.test"] = { mx = { { 10, "mx.grey.test" } } },
    ["mx.grey.test"] = { a = { "192.0.2.27" } },
  },
  sessions = {
    { replies = { RCPT = { postgrey, postgrey, postgrey } } },
  },
  expect = { status = "unknown", reason = "greylisted",
             fields = { smtp_code = 450, smtp_enhanced = "4.2.0", attempts = 3 } },
}
