-- Proofpoint's unknown user (captured shape).
return {
  name = "proofpoint: 550 5.1.1 User Unknown (captured)",
  address = "nobody@pp-corp.test",
  dns = {
    ["pp-corp.test"] = { mx = { { 10, "mx0a-00123401.pphosted.com" }, { 20, "mx0b-00123401.pphosted.com" } } },
    ["mx0a-00123401.pphosted.com"] = { a = { "148.163.156.1" } },
    ["mx0b-00123401.pphosted.com"] = { a = { "148.163.158.1" } },
  },
  sessions = { { transcript = "transcripts/proofpoint-user-unknown.txt" } },
  expect = { status = "undeliverable", reason = "mailbox_not_found",
             fields = { provider = "proofpoint", smtp_code = 550, smtp_enhanced = "5.1.1" } },
}
