-- RFC 7505: "MX 0 ." says the domain takes no mail. Decided by DNS; no SMTP session.
return {
  name = "dns: null MX",
  address = "alice@nomail.test",
  dns = { ["nomail.test"] = { mx = { { 0, "." } } } },
  expect = { status = "undeliverable", reason = "null_mx", absent = { "mx", "smtp", "provider" } },
}
