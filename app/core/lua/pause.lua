-- Pause an account (Personyze answered 503 or 401); a longer pause already set is kept.
-- KEYS: 1 pause, 2 auth-failure hash (only for 401, else '')
-- ARGV: 1 seconds (ignored for 401), 2 auth base s, 3 auth max s
-- Returns {seconds paused, 1 if this is the first 401 report since the last success}
local secs = tonumber(ARGV[1])
local first = 0
if KEYS[2] ~= '' then
  local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
  secs = math.min(tonumber(ARGV[3]), tonumber(ARGV[2]) * 2 ^ (n - 1))
  first = redis.call('HSETNX', KEYS[2], 'alerted', 1)
end
local ms = math.ceil(secs * 1000)
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return {tostring(secs), first}
