-- Gmail's NoSuchUser, captured over STARTTLS (playback strips the STARTTLS exchange).
return {
  name = "google: Gmail NoSuchUser (captured, STARTTLS stripped), no catch-all probe",
  address = "nobody@gmail.com",
  dns = {
    ["gmail.com"] = { mx = {
      { 5, "gmail-smtp-in.l.google.com" },
      { 10, "alt1.gmail-smtp-in.l.google.com" },
    } },
    ["gmail-smtp-in.l.google.com"] = { a = { "142.250.102.27" } },
    ["alt1.gmail-smtp-in.l.google.com"] = { a = { "142.251.9.27" } },
  },
  sessions = { { transcript = "transcripts/gmail-nosuchuser.txt" } },
  expect = {
    status = "undeliverable", reason = "mailbox_not_found",
    fields = { smtp_code = 550, smtp_enhanced = "5.1.1", provider = "google",
               mx = "gmail-smtp-in.l.google.com", tls = false, free = true },
    absent = { "catch_all" },
  },
}
