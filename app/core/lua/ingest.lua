-- Record one verified store event in a single atomic step (DESIGN.md invariants 1-3, 8).
-- KEYS: 1 dedupe key, 2 product hash, 3 due zset, 4 ledger hash, 5 dlq hash, 6 kick list
-- ARGV: 1 dedupe ttl s, 2 version (int us), 3 kind u|d, 4 doc, 5 received_at,
--       6 wake delay s (0: the dispatcher wakes it; >0: the caller publishes and the sweeper
--       only steps in after this grace), 7 product id, 8 store id, 9 kick? 1|0
-- A product written less than the cooldown ago is due when the cooldown ends, so a burst of
-- updates becomes one write now and one write of the newest state after it.
-- Returns: 0 duplicate, 1 stale, 2 accepted and a wake-up is needed, 3 accepted, already due
local ledger = KEYS[4]
redis.call('HINCRBY', ledger, 'received', 1)
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  redis.call('HINCRBY', ledger, 'duplicates', 1)
  return 0
end
local version = tonumber(ARGV[2])
local cur = redis.call('HMGET', KEYS[2], 'pv', 'sv', 'dv', 'cool')
local pv, sv, dv = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3])
if (pv and version <= pv) or (sv and version <= sv) or (dv and version <= dv) then
  redis.call('HINCRBY', ledger, 'stale', 1)
  return 1
end
if pv then
  redis.call('HINCRBY', ledger, 'coalesced', 1)
else
  redis.call('HINCRBY', ledger, 'pending', 1)
end
if dv then
  redis.call('HDEL', KEYS[2], 'dv')
  if redis.call('HDEL', KEYS[5], ARGV[7]) == 1 then
    redis.call('HINCRBY', ledger, 'dead', -1)
    redis.call('HINCRBY', ledger, 'coalesced', 1)
  end
end
redis.call('HSET', KEYS[2], 'pv', ARGV[2], 'pk', ARGV[3], 'pd', ARGV[4], 'pt', ARGV[5])
if pv then
  -- a new version gets a fresh retry budget (only a pending key can have used some)
  redis.call('HDEL', KEYS[2], 'att', 'ff', 'errs')
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local at = now + tonumber(ARGV[6])
local cool = tonumber(cur[4])
if cool and cool > at then
  at = cool
end
-- A fresh key is due now; an already-due one (backing off, or in flight) is brought forward
-- only, so a new version does not wait out the old version's retry backoff.
if redis.call('ZADD', KEYS[3], pv and 'LT' or 'NX', 'CH', at, ARGV[7]) == 1 then
  if ARGV[9] == '1' then
    if redis.call('RPUSH', KEYS[6], ARGV[8]) > 1000 then
      redis.call('LTRIM', KEYS[6], -1000, -1)
    end
  end
  return 2
end
return 3
