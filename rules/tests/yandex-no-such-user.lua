-- Yandex's unknown user is a 5.7.1 (captured shape): mailbox_not_found by its wording.
return {
  name = "yandex: 550 5.7.1 No such user! (captured)",
  address = "nobody@yandex.ru",
  dns = {
    ["yandex.ru"] = { mx = { { 10, "mx.yandex.net" } } },
    ["mx.yandex.net"] = { a = { "77.88.21.1" } },
  },
  sessions = { { transcript = "transcripts/yandex-no-such-user.txt" } },
  expect = { status = "undeliverable", reason = "mailbox_not_found",
             fields = { provider = "yandex", smtp_enhanced = "5.7.1" }, absent = { "catch_all" } },
}
