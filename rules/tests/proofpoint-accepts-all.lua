-- A Proofpoint customer without recipient verification: the gateway takes the made-up name
-- too, so the accept says nothing: risky/catch_all.
return {
  name = "proofpoint: gateway without recipient verification is catch_all",
  address = "alice@pp-corp.test",
  dns = {
    ["pp-corp.test"] = { mx = { { 10, "mx0a-00123401.pphosted.com" }, { 20, "mx0b-00123401.pphosted.com" } } },
    ["mx0a-00123401.pphosted.com"] = { a = { "148.163.156.1" } },
    ["mx0b-00123401.pphosted.com"] = { a = { "148.163.158.1" } },
  },
  sessions = {
    { banner = "220 mx0a-00123401.pphosted.com ESMTP mfa-m0123401",
      replies = { RCPT = { "250 2.1.5 Recipient ok", "250 2.1.5 Recipient ok" } } },
  },
  expect = { status = "risky", reason = "catch_all", fields = { provider = "proofpoint", catch_all = true } },
}
