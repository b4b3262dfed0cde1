-- bench_slow.lua — bench/limiter_bench.sh: the sink on 127.0.0.2, throttled to 60 RCPTs a
-- minute (burst 1) in the provider, MX and domain scopes; the other limits of those scopes are
-- the defaults (4 connections: the rest of its addresses park in the limiter). The shared keys
-- (source IP, everything) get the same huge limits as bench_open, so that only this domain's
-- own keys hold it back (a shared key takes the limits of whichever rule asked last).
local default = require "default"
local huge = require "limiter_bench.huge"

local slow = { rcpt_per_minute = 60, rcpt_burst = 1 }

return {
  name = "bench_slow",
  match = { domain = { "[127.0.0.2]" } },
  probe = default.probe,
  limits = huge.limits({ provider = slow, mx = slow, domain = slow }),
}
