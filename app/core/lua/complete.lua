-- Record what Personyze confirmed (or that nothing had to be sent) and clear pending, unless a
-- newer version arrived while the call was in flight: then the key is due again at once.
-- KEYS: 1 product hash, 2 lease, 3 due zset, 4 ledger, 5 kick list, 6 account failure
--       counters (a confirmed write clears them)
-- ARGV: 1 token, 2 version, 3 hash, 4 kind, 5 outcome (ledger field), 6 product id, 7 store,
--       8 kick? 1|0, 9 cooldown s (a write starts the product's cooldown)
-- Returns 0 done, 1 newer pending (woken)
local version = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
if ARGV[5] == 'written' and tonumber(ARGV[9]) > 0 then
  redis.call('HSET', KEYS[1], 'cool', string.format('%.6f', now + tonumber(ARGV[9])))
end
local h = redis.call('HMGET', KEYS[1], 'pv', 'sv')
local pv, sv = tonumber(h[1]), tonumber(h[2])
if not sv or version > sv then
  redis.call('HSET', KEYS[1], 'sv', ARGV[2], 'sh', ARGV[3], 'sk', ARGV[4])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
if KEYS[6] ~= '' then
  redis.call('DEL', KEYS[6])
end
if pv and pv == version then
  redis.call('HDEL', KEYS[1], 'pv', 'pk', 'pd', 'pt', 'att', 'ff', 'errs')
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  redis.call('HINCRBY', KEYS[4], 'pending', -1)
  redis.call('ZREM', KEYS[3], ARGV[6])
  return 0
end
if pv then
  local at = tonumber(redis.call('HGET', KEYS[1], 'cool')) or now
  redis.call('ZADD', KEYS[3], math.max(now, at), ARGV[6])
  if ARGV[8] == '1' then
    if redis.call('RPUSH', KEYS[5], ARGV[7]) > 1000 then
      redis.call('LTRIM', KEYS[5], -1000, -1)
    end
  end
  return 1
end
return 0
