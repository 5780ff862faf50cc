-- Take the short lease on a product and read what must be done (docs/design.md, Claim, lease, record).
-- KEYS: 1 pending hash, 2 lease, 3 due zset, 4 record bucket, 5 woken zset, 6 cooldown key
-- ARGV: 1 token, 2 lease ms, 3 product id
-- Returns {'busy'} | {'idle'} | {'cooling'} | {'ok', pv, pk, pd, sv, sh, att, ff, errs, pt}
-- (sh: the synced content hash in hex, 'deleted' for a tombstone, '' when nothing is synced)
local pid = ARGV[3]
redis.call('ZREM', KEYS[5], pid)  -- this key's wake-up has arrived
local now = clock()
local cool = cooling(KEYS[6])
if cool > 0 and redis.call('HEXISTS', KEYS[1], 'pv') == 1 then
  -- written moments ago: the newest state goes out when the cooldown ends (burst coalescing)
  redis.call('ZADD', KEYS[3], now + cool, pid)
  return {'cooling'}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then
  -- The holder decides what comes next; should it die, the key is due when its lease ends.
  local ttl = math.max(0, redis.call('PTTL', KEYS[2]))
  redis.call('ZADD', KEYS[3], 'NX', now + ttl / 1000, pid)
  return {'busy'}
end
local h = redis.call('HMGET', KEYS[1], 'pv', 'pk', 'pd', 'att', 'ff', 'errs', 'pt', 'sv', 'sh')
if not h[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], pid)
  return {'idle'}
end
-- While we hold the lease the sweeper must not wake it; if we die it is due when the lease ends.
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]) / 1000, pid)
local kind, sv, sh = rec_read(redis.call('HGET', KEYS[4], pid))
local synced_v, synced_h = '', ''
if kind == 'u' then
  synced_v, synced_h = string.format('%.0f', sv), hex(sh)
elseif kind == 'd' then
  synced_v, synced_h = string.format('%.0f', sv), 'deleted'
elseif h[8] then  -- synced before the bucketed records (not migrated yet)
  synced_v, synced_h = h[8], h[9] or ''
end
return {'ok', h[1], h[2], h[3], synced_v, synced_h, h[4] or '0', h[5] or '', h[6] or '',
        h[7] or ''}
