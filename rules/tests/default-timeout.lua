-- A server that stops answering after RCPT: the command timeout ends it, unknown/timeout.
return {
  name = "default: no answer to RCPT is a timeout",
  address = "alice@tarpit.test",
  options = { smtp_timeout = 0.5 },
  dns = {
    ["tarpit.test"] = { mx = { { 10, "mx.tarpit.test" } } },
    ["mx.tarpit.test"] = { a = { "192.0.2.28" } },
  },
  sessions = { { replies = { RCPT = { "timeout" } } } },
  expect = { status = "unknown", reason = "timeout", absent = { "smtp" } },
}
