-- Record what Personyze confirmed (or that nothing had to be sent) and drop the pending state,
-- unless a newer version arrived while the call was in flight: then the key is due again at
-- once (or when the cooldown this write started ends).
-- KEYS: 1 pending hash, 2 lease, 3 due zset, 4 ledger, 5 kick list, 6 account failure
--       counters (a confirmed write clears them), 7 record bucket, 8 cooldown key
-- ARGV: 1 token, 2 version, 3 content hash (16 raw bytes; '' for a delete), 4 kind u|d,
--       5 outcome (ledger field), 6 product id, 7 store, 8 kick? 1|0, 9 cooldown s
-- Returns 0 done, 1 newer pending (woken)
local version, pid = tonumber(ARGV[2]), ARGV[6]
local now = clock()
if ARGV[5] == 'written' and tonumber(ARGV[9]) > 0 then
  redis.call('SET', KEYS[8], '1', 'PX', math.ceil(tonumber(ARGV[9]) * 1000))
end
local kind, sv, sh, ring = rec_read(redis.call('HGET', KEYS[7], pid))
if not sv or version > sv then
  redis.call('HSET', KEYS[7], pid, rec_pack(ARGV[4], version, ARGV[3], ring))
end
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
end
if KEYS[6] ~= '' then
  redis.call('DEL', KEYS[6])
end
local pv = tonumber(redis.call('HGET', KEYS[1], 'pv'))
if pv and pv == version then
  redis.call('DEL', KEYS[1])  -- pending state lives only while pending
  redis.call('HINCRBY', KEYS[4], ARGV[5], 1)
  redis.call('HINCRBY', KEYS[4], 'pending', -1)
  redis.call('ZREM', KEYS[3], pid)
  return 0
end
redis.call('HDEL', KEYS[1], 'sv', 'sh', 'sk', 'cool')  -- fields of the pre-bucket layout
if pv then
  redis.call('ZADD', KEYS[3], now + cooling(KEYS[8]), pid)
  if ARGV[8] == '1' then
    if redis.call('RPUSH', KEYS[5], ARGV[7]) > 1000 then
      redis.call('LTRIM', KEYS[5], -1000, -1)
    end
  end
  return 1
end
return 0
