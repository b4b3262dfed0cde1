-- A failing name server says nothing about the domain: unknown/dns_error, never undeliverable.
return {
  name = "dns: SERVFAIL is unknown, not undeliverable",
  address = "alice@broken.test",
  dns = { ["broken.test"] = { rcode = "servfail" } },
  expect = { status = "unknown", reason = "dns_error", absent = { "mx", "smtp" } },
}
