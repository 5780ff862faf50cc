-- Hand out due keys to wake, each to one sweeper only, and recover wake-ups that were lost.
-- A woken key leaves `due` for `woken` (key -> when its message was published) until a worker
-- claims it, so a key whose message is still queued is never woken twice. The broker's queue
-- is FIFO, so the messages it still holds are the newest ones published: a wake-up older than
-- the `queued` newest, and unclaimed for longer than the grace, was lost (a broker restart, a
-- message deleted) and its key is due again.
-- KEYS: 1 due zset, 2 woken zset
-- ARGV: 1 max keys to wake, 2 grace s, 3 messages the broker's queue holds now
-- Returns {seconds until the next due key after these (-1: none), key...}
local now = clock()
local held = tonumber(ARGV[3])
local outstanding = redis.call('ZCARD', KEYS[2])
if outstanding > held then
  local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]),
                         'LIMIT', 0, outstanding - held)
  for _, k in ipairs(old) do
    redis.call('ZREM', KEYS[2], k)
    redis.call('ZADD', KEYS[1], 'LT', now, k)
  end
end
local out = {''}
local n = tonumber(ARGV[1])
if n > 0 then
  local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, n)
  for _, k in ipairs(keys) do
    redis.call('ZREM', KEYS[1], k)
    if redis.call('ZADD', KEYS[2], 'NX', now, k) == 1 then
      out[#out + 1] = k
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then
  out[1] = tostring(math.max(0, tonumber(first[2]) - now))
else
  out[1] = '-1'
end
return out
