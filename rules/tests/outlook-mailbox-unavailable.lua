-- Outlook.com's unknown mailbox (550 5.5.0 ... mailbox unavailable), captured shape. The
-- consumer hosts match microsoft365's pattern too: outlook wins by priority.
return {
  name = "outlook: 550 5.5.0 mailbox unavailable (captured)",
  address = "nobody@outlook.com",
  dns = {
    ["outlook.com"] = { mx = { { 10, "outlook-com.olc.protection.outlook.com" } } },
    ["outlook-com.olc.protection.outlook.com"] = { a = { "52.101.194.1" } },
  },
  sessions = { { transcript = "transcripts/outlook-mailbox-unavailable.txt" } },
  expect = { status = "undeliverable", reason = "mailbox_not_found",
             fields = { provider = "outlook", smtp_code = 550, smtp_enhanced = "5.5.0" }, absent = { "catch_all" } },
}
