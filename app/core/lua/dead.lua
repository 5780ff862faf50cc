-- Move a key whose retry budget is spent (or that Personyze rejected with 400) to the
-- dead-letter store, unless a newer version arrived meanwhile (that one gets its own budget).
-- KEYS: 1 product hash, 2 lease, 3 due zset, 4 ledger, 5 dlq hash
-- ARGV: 1 token, 2 version, 3 entry json, 4 product id
-- Returns 0 dead-lettered, 1 superseded (due again at once), 2 lease lost (another worker
-- owns the key now and decides)
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 2
end
redis.call('DEL', KEYS[2])
local pv = redis.call('HGET', KEYS[1], 'pv')
if not pv then
  return 1
end
if tonumber(pv) ~= tonumber(ARGV[2]) then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[3], tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[4])
  return 1
end
redis.call('HSET', KEYS[5], ARGV[4], ARGV[3])
redis.call('HSET', KEYS[1], 'dv', ARGV[2])
redis.call('HDEL', KEYS[1], 'pv', 'pk', 'pd', 'pt', 'att', 'ff', 'errs')
redis.call('HINCRBY', KEYS[4], 'dead', 1)
redis.call('HINCRBY', KEYS[4], 'pending', -1)
redis.call('ZREM', KEYS[3], ARGV[4])
return 0
