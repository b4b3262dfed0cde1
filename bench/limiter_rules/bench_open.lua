-- bench_open.lua — bench/limiter_bench.sh: the sink on 127.0.0.1, probed the default way,
-- with limits so high they never bind: with the limiter on, a run pays for its bookkeeping
-- (a wait object and five key lookups per session and per RCPT) and nothing else.
local default = require "default"
local huge = require "limiter_bench.huge"

return {
  name = "bench_open",
  match = { domain = { "[127.0.0.1]" } },
  probe = default.probe,
  limits = huge.limits(),
}
