-- Hostile: Proofpoint's block of our IP (ipcheck.proofpoint.com): never undeliverable.
return {
  name = "proofpoint: 554 5.7.0 ipcheck block is blocked",
  address = "alice@pp-corp.test",
  dns = {
    ["pp-corp.test"] = { mx = { { 10, "mx0a-00123401.pphosted.com" }, { 20, "mx0b-00123401.pphosted.com" } } },
    ["mx0a-00123401.pphosted.com"] = { a = { "148.163.156.1" } },
    ["mx0b-00123401.pphosted.com"] = { a = { "148.163.158.1" } },
  },
  sessions = {
    { banner = "220 mx0a-00123401.pphosted.com ESMTP mfa-m0123401",
      replies = { RCPT = { "554 5.7.0 Blocked - see https://ipcheck.proofpoint.com/?ip=192.0.2.1" } } },
  },
  expect = { status = "unknown", reason = "blocked", fields = { provider = "proofpoint", smtp_enhanced = "5.7.0" } },
}
