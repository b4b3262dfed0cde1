-- validora/once.lua — job:once(key, fn): fn runs once per generation and key; jobs that ask
-- for the same key meanwhile wait for its value (parked, not polling).
--
-- An error in fn propagates to its caller; the waiters get nil and the key is forgotten.
-- A nil result ("could not tell") is handed to the waiters but not kept: a later job asks
-- again. Built on job:_park() / job:_wake(v), which the engine provides.

local memo = {}

return function(job, key, fn)
  local m = memo[key]
  if m then
    if m.done then return m.value end
    m.waiters[#m.waiters + 1] = job
    return job:_park()
  end
  m = { waiters = {} }
  memo[key] = m
  local ok, v = pcall(fn)
  if not ok then
    memo[key] = nil
    for _, w in ipairs(m.waiters) do w:_wake(nil) end
    error(v, 0)
  end
  if v == nil then memo[key] = nil else m.done, m.value = true, v end
  for _, w in ipairs(m.waiters) do w:_wake(v) end
  m.waiters = nil
  return v
end
