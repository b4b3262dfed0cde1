-- Gmail normalisation: googlemail.com is gmail.com, and Gmail ignores dots and +tags, so the
-- record's address is the canonical mailbox (RCPT asks for it); email stays as given. A
-- Workspace domain is not rewritten, and a local part that would be left empty is kept.
return {
  name = "google: Gmail addresses normalised (dots, +tag, googlemail.com), others not",
  verify = {
    { address = "J.ohn.Smith+x@googlemail.com",
      expect = { status = "deliverable", reason = "accepted",
                 fields = { address = "johnsmith@gmail.com", email = "J.ohn.Smith+x@googlemail.com",
                            domain = "googlemail.com", provider = "google" }, absent = { "catch_all" } } },
    { address = "J.Smith+news@gws.test",
      expect = { status = "deliverable", reason = "accepted",
                 fields = { address = "J.Smith+news@gws.test", provider = "google", catch_all = false } } },
    { address = "+tag@gmail.com",
      expect = { status = "undeliverable", reason = "mailbox_not_found", fields = { address = "+tag@gmail.com" } } },
  },
  dns = {
    ["googlemail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gmail.com"] = { mx = { { 5, "gmail-smtp-in.l.google.com" } } },
    ["gws.test"] = { mx = { { 1, "aspmx.l.google.com" } } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
    ["aspmx.l.google.com"] = { a = { "142.250.27.26" } },
  },
  options = { reuse = false },
  sessions = {
    { host = "gmail-smtp-in.l.google.com", replies = { RCPT = { "250 2.1.5 OK a1si1 - gsmtp" } } },
    { host = "aspmx.l.google.com",
      replies = { RCPT = { "250 2.1.5 OK a1si2 - gsmtp",
        "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
          .. "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si3 - gsmtp" } } },
    { host = "gmail-smtp-in.l.google.com",
      replies = { RCPT = { "550-5.1.1 The email account that you tried to reach does not exist. Please try\n"
        .. "550 5.1.1  https://support.google.com/mail/?p=NoSuchUser a1si4 - gsmtp" } } },
  },
}
