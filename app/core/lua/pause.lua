-- Pause an account (Personyze answered 503 or 401); a longer pause already set is kept.
-- KEYS: 1 pause, 2 failure counters hash (cleared by the next success, see complete.lua)
-- ARGV: 1 mode: 'wait' (Personyze named the seconds), 'busy' (503 without a number:
--       exponential backoff with full jitter on the account's consecutive 503s) or 'auth'
--       (401: base doubling per repeat, reported once), 2 seconds | base, 3 cap,
--       4 jitter fraction in [0, 1)
-- Returns {seconds paused, 1 if this is the first 401 report since the last success}
local mode = ARGV[1]
local secs = tonumber(ARGV[2])
local first = 0
if mode == 'busy' then
  local n = redis.call('HINCRBY', KEYS[2], 'busy', 1)
  secs = math.max(1, math.min(tonumber(ARGV[3]), secs * 2 ^ (n - 1)) * tonumber(ARGV[4]))
elseif mode == 'auth' then
  local n = redis.call('HINCRBY', KEYS[2], 'auth', 1)
  secs = math.min(tonumber(ARGV[3]), secs * 2 ^ (n - 1))
  first = redis.call('HSETNX', KEYS[2], 'alerted', 1)
end
local ms = math.ceil(secs * 1000)
if redis.call('PTTL', KEYS[1]) < ms then
  redis.call('SET', KEYS[1], '1', 'PX', ms)
end
return {tostring(secs), first}
