-- Record one verified store event in a single atomic step (docs/design.md invariants 1-3, 8).
-- KEYS: 1 record bucket, 2 pending hash, 3 due zset, 4 ledger hash, 5 dlq hash, 6 kick list,
--       7 woken zset, 8 cooldown key
-- ARGV: 1 delivery digest, 2 version (int us), 3 kind u|d|r, 4 doc, 5 received_at,
--       6 1: the caller publishes the wake-up (WAKE_FROM_WEB), 7 product id, 8 store id,
--       9 kick? 1|0, 10 settle? 1|0: a delete without a time of its own ranks just after
--       the newest version held (docs/design.md, Security); ARGV 2 stands in when none is
-- The product's record remembers its latest deliveries: a repeat of one of them is a
-- duplicate; an older one is told by its version (stale). A product written less than the
-- cooldown ago is due when the cooldown ends (burst coalescing). A key whose wake-up message
-- is still outstanding is not woken again: that message finds the newest pending state.
-- Returns: 0 duplicate, 1 stale, 2 accepted and a wake-up is needed (the caller publishes it
-- with WAKE_FROM_WEB), 3 accepted, already due or woken (or cooling: the dispatcher wakes it)
local ledger, pid = KEYS[4], ARGV[7]
redis.call('HINCRBY', ledger, 'received', 1)
local kind, sv, sh, ring = rec_read(redis.call('HGET', KEYS[1], pid))
if ring_has(ring, ARGV[1]) then
  redis.call('HINCRBY', ledger, 'duplicates', 1)
  return 0
end
redis.call('HSET', KEYS[1], pid, rec_pack(kind, sv, sh, ring_add(ring, ARGV[1])))
local version = tonumber(ARGV[2])
-- 'sv' in the pending hash: a synced version from before the bucketed records (migrate)
local cur = redis.call('HMGET', KEYS[2], 'pv', 'dv', 'sv')
local pv, dv, old_sv = tonumber(cur[1]), tonumber(cur[2]), tonumber(cur[3])
if ARGV[10] == '1' then
  local known = math.max(pv or 0, sv or 0, dv or 0, old_sv or 0)
  if known > 0 then
    version = math.max(known + 1, known - known % 1000000 + 999999)
  end
end
if (pv and version <= pv) or (sv and version <= sv) or (dv and version <= dv)
    or (old_sv and version <= old_sv) then
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
  if redis.call('HDEL', KEYS[5], pid) == 1 then
    redis.call('HINCRBY', ledger, 'dead', -1)
    redis.call('HINCRBY', ledger, 'coalesced', 1)
  end
end
redis.call('HSET', KEYS[2], 'pv', string.format('%.0f', version), 'pk', ARGV[3], 'pd', ARGV[4],
  'pt', ARGV[5])
if pv then
  -- a new version gets a fresh retry budget (only a pending key can have used some)
  redis.call('HDEL', KEYS[2], 'att', 'ff', 'errs')
end
if redis.call('ZSCORE', KEYS[7], pid) then
  return 3
end
local now = clock()
local at = now + cooling(KEYS[8])
if ARGV[6] == '1' and at <= now then
  -- the web process publishes now; the sweeper recovers the key if that message is lost
  redis.call('ZREM', KEYS[3], pid)
  redis.call('ZADD', KEYS[7], now, pid)
  return 2
end
-- A fresh key is due now; an already-due one (backing off, or in flight) is brought forward
-- only, so a new version does not wait out the old version's retry backoff.
-- A key held back by its cooldown waits here for the dispatcher even with WAKE_FROM_WEB: a
-- message published now would only find it cooling, and the woken set would not know it.
if redis.call('ZADD', KEYS[3], pv and 'LT' or 'NX', 'CH', at, pid) == 1 then
  if ARGV[9] == '1' then
    if redis.call('RPUSH', KEYS[6], ARGV[8]) > 1000 then
      redis.call('LTRIM', KEYS[6], -1000, -1)
    end
  end
  if ARGV[6] ~= '1' then
    return 2
  end
end
return 3
