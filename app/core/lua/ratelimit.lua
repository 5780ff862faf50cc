-- GCRA rate limit shared by every worker of one Personyze account, plus the account pause.
-- Returns {'paused', seconds} | {'wait', seconds} | {'ok', tokens available before this one}.
-- KEYS: 1 theoretical arrival time, 2 pause
-- ARGV: 1 emission interval s (1/rate), 2 burst tolerance s, 3 consume? 1|0
local pttl = redis.call('PTTL', KEYS[2])
if pttl > 0 then
  return {'paused', tostring(pttl / 1000)}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local interval, tau = tonumber(ARGV[1]), tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local wait = tat - tau - now
if wait > 0 then
  return {'wait', tostring(wait)}
end
local tokens = math.floor((tau - (tat - now)) / interval) + 1
if ARGV[3] == '1' then
  local new = tat + interval
  redis.call('SET', KEYS[1], string.format('%.6f', new), 'PX',
             math.ceil((new - now) * 1000) + 1000)
end
return {'ok', tostring(tokens)}
