-- Bring one product's state to the current layout (`personyze-sync migrate`, and the
-- scheduler at start). Idempotent.
-- mode 'fold': the pre-bucket layout kept sv/sh/sk (synced version, hex hash or 'deleted',
--   kind) and cool in the product's hash: move the synced part into its record, drop the rest,
--   and the hash itself when nothing is pending or dead.
-- mode 'move': the record sits in another bucket (the bucket count changed): re-file it.
-- KEYS: fold: 1 pending hash, 2 record bucket; move: 1 old bucket, 2 new bucket
-- ARGV: 1 mode, 2 product id
-- Returns 1 when something changed
local pid = ARGV[2]
if ARGV[1] == 'move' then
  local raw = redis.call('HGET', KEYS[1], pid)
  if not raw or KEYS[1] == KEYS[2] then
    return 0
  end
  redis.call('HSETNX', KEYS[2], pid, raw)
  redis.call('HDEL', KEYS[1], pid)
  return 1
end
local h = redis.call('HMGET', KEYS[1], 'sv', 'sh', 'sk')
if not h[1] then
  return redis.call('HDEL', KEYS[1], 'cool') > 0 and 1 or 0
end
local kind, sv, sh, ring = rec_read(redis.call('HGET', KEYS[2], pid))
local old = tonumber(h[1])
if not sv or old > sv then
  local k = (h[2] == 'deleted' or h[3] == 'd') and 'd' or 'u'
  local raw = string.gsub(h[2] or '', '%x%x', function(c) return string.char(tonumber(c, 16)) end)
  if k == 'u' and #raw ~= 16 then
    raw = string.rep('\0', 16)  -- an unknown hash only costs one unneeded write
  end
  redis.call('HSET', KEYS[2], pid, rec_pack(k, old, raw, ring))
end
redis.call('HDEL', KEYS[1], 'sv', 'sh', 'sk', 'cool')
return 1
