-- Give the key back without a result: reschedule it `delay` seconds from now and drop the lease.
-- Used when no rate-limit token is available, the account is paused, or an attempt failed and
-- will be retried. A newer pending version makes it due at once instead.
-- KEYS: 1 product hash, 2 lease, 3 due zset
-- ARGV: 1 token, 2 version, 3 delay s, 4 product id, 5 count attempt? 1|0, 6 errs json
-- Returns the due time it got, or -2 when the lease is no longer ours (another worker owns the
-- key now: it decides).
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return '-2'
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local pv = redis.call('HGET', KEYS[1], 'pv')
local at = now + tonumber(ARGV[3])
if not pv then
  redis.call('ZREM', KEYS[3], ARGV[4])
  at = -1
elseif tonumber(pv) ~= tonumber(ARGV[2]) then
  at = now
  redis.call('ZADD', KEYS[3], at, ARGV[4])
else
  if ARGV[5] == '1' then
    redis.call('HINCRBY', KEYS[1], 'att', 1)
    redis.call('HSETNX', KEYS[1], 'ff', tostring(now))
    redis.call('HSET', KEYS[1], 'errs', ARGV[6])
  end
  redis.call('ZADD', KEYS[3], at, ARGV[4])
end
redis.call('DEL', KEYS[2])
return tostring(at)
