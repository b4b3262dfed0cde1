-- The domain does not exist (every name the test leaves out is NXDOMAIN).
return {
  name = "dns: NXDOMAIN",
  address = "alice@nosuch.test",
  expect = { status = "undeliverable", reason = "domain_not_found", absent = { "mx", "smtp" } },
}
