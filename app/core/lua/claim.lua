-- Take the short lease on a product and read what must be done (DESIGN.md: per-key claim).
-- KEYS: 1 product hash, 2 lease, 3 due zset
-- ARGV: 1 token, 2 lease ms, 3 product id
-- Returns {'busy'} | {'idle'} | {'cooling'} | {'ok', pv, pk, pd, sv, sh, att, ff, errs, pt}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cool = tonumber(redis.call('HGET', KEYS[1], 'cool'))
if cool and cool > now and redis.call('HEXISTS', KEYS[1], 'pv') == 1 then
  -- written moments ago: the newest state goes out when the cooldown ends (burst coalescing)
  redis.call('ZADD', KEYS[3], cool, ARGV[3])
  return {'cooling'}
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) == false then
  return {'busy'}
end
local h = redis.call('HMGET', KEYS[1], 'pv', 'pk', 'pd', 'sv', 'sh', 'att', 'ff', 'errs', 'pt')
if not h[1] then
  redis.call('DEL', KEYS[2])
  redis.call('ZREM', KEYS[3], ARGV[3])
  return {'idle'}
end
-- While we hold the lease the sweeper must not wake it; if we die it is due when the lease ends.
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]) / 1000, ARGV[3])
return {'ok', h[1], h[2], h[3], h[4] or '', h[5] or '', h[6] or '0', h[7] or '', h[8] or '',
        h[9] or ''}
