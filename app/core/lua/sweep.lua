-- Hand out due keys to wake, each to one sweeper only: a woken key is pushed `grace` seconds
-- into the future, so if its wake-up message is lost it comes round again then.
-- KEYS: 1 due zset
-- ARGV: 1 max keys, 2 grace s
-- Returns {seconds until the next due key after these (-1: none), key...}
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local out = {''}
local n = tonumber(ARGV[1])
if n > 0 then
  local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
  for i, k in ipairs(keys) do
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), k)
    out[#out + 1] = k
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  out[1] = tostring(math.max(0, tonumber(first[2]) - now))
else
  out[1] = '-1'
end
return out
