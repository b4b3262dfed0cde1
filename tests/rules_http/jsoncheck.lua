-- jsoncheck.lua — json.decode / json.encode checked from inside the rules sandbox (run by
-- tests/rules_http/tests/json-roundtrip.lua): deliverable when every check holds, else
-- unknown/rule_error naming the first that failed. Domain jsoncheck.test; no I/O.

local M = { name = "jsoncheck", match = { domain = { "jsoncheck.test" } } }

local checks
checks = function()
  local v = json.decode('{"a":[1,2.5,"x",true,false,null],"b":{"c":{}},"u":"\\u00e9"}')
  if not v then return "decode of a valid document failed" end
  if v.a[1] ~= 1 or math.type(v.a[1]) ~= "integer" then return "integer" end
  if v.a[2] ~= 2.5 or v.a[3] ~= "x" or v.a[4] ~= true or v.a[5] ~= false then return "scalars" end
  if v.a[6] ~= json.null then return "null is json.null" end
  if type(v.b.c) ~= "table" or next(v.b.c) ~= nil then return "empty object" end
  if v.u ~= "\xc3\xa9" then return "unicode escape" end
  local nv, err = json.decode("{not json")
  if nv ~= nil or err ~= errors.bad_json then return "bad JSON gives nil, errors.bad_json" end
  if json.decode(string.rep("[", 100) .. string.rep("]", 100)) ~= nil then return "depth bound" end
  if json.encode({ 1, 2, 3 }) ~= "[1,2,3]" then return "array encode" end
  if json.encode({ k = "v" }) ~= '{"k":"v"}' then return "object encode" end
  if json.encode({ n = json.null }) ~= '{"n":null}' then return "null encode" end
  if json.encode("a\"b") ~= '"a\\"b"' then return "string escape" end
  if json.encode({ [1] = 1, x = 2 }) ~= nil then return "mixed keys refused" end
  local t = {}
  t.self = t
  if json.encode(t) ~= nil then return "a cycle is refused" end
  if json.encode({ f = checks }) ~= nil then return "a function is refused" end
  if json.encode(0 / 0) ~= nil then return "NaN refused" end
  local round = json.decode(json.encode({ Username = "alice@x.test", n = 5, list = { "a" } }))
  if round.Username ~= "alice@x.test" or round.n ~= 5 or round.list[1] ~= "a" then
    return "round trip"
  end
  return nil
end

function M.probe(job)
  local failed = checks()
  if failed then return job:unknown("rule_error", nil, "json check failed: " .. failed) end
  return job:deliverable("accepted")
end

return M
