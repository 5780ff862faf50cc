-- Put a dead-lettered event back in pending with a fresh retry budget.
-- KEYS: 1 product hash, 2 due zset, 3 ledger, 4 dlq hash, 5 kick list
-- ARGV: 1 product id, 2 store, 3 kick? 1|0
-- Returns 1 replayed, 0 no such entry, 2 superseded by a newer pending version
local raw = redis.call('HGET', KEYS[4], ARGV[1])
if not raw then
  return 0
end
local e = cjson.decode(raw)
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('HINCRBY', KEYS[3], 'dead', -1)
if redis.call('HEXISTS', KEYS[1], 'pv') == 1 then
  -- a newer event is already pending: the dead one is superseded
  redis.call('HINCRBY', KEYS[3], 'coalesced', 1)
  return 2
end
redis.call('HSET', KEYS[1], 'pv', e['version'], 'pk', e['kind'], 'pd', e['doc'],
           'pt', e['received_at'], 'att', 0)
redis.call('HDEL', KEYS[1], 'dv', 'ff', 'errs')
redis.call('HINCRBY', KEYS[3], 'pending', 1)
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], tonumber(t[1]) + tonumber(t[2]) / 1e6, ARGV[1])
if ARGV[3] == '1' then
  if redis.call('RPUSH', KEYS[5], ARGV[2]) > 1000 then
    redis.call('LTRIM', KEYS[5], -1000, -1)
  end
end
return 1
