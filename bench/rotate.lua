-- wrk script for bench/ingest.py: every request is a distinct, pre-signed Shopify webhook.
-- Each wrk thread reads its own file of complete raw HTTP requests (records framed by a
-- 10-digit length) and sends them in order, so no two requests of a run are the same delivery.
-- usage: wrk ... -s bench/rotate.lua URL -- <directory holding reqs_<thread>.bin>

local threads = {}
local counter = 1

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local reqs = {}
local n = 0
local i = 0
wrapped = 0

function init(args)
  local f = assert(io.open(args[1] .. "/reqs_" .. tid .. ".bin", "rb"))
  local data = f:read("*a")
  f:close()
  local pos = 1
  local size = #data
  while pos <= size do
    local len = tonumber(data:sub(pos, pos + 9))
    pos = pos + 10
    n = n + 1
    reqs[n] = data:sub(pos, pos + len - 1)
    pos = pos + len
  end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wrapped = wrapped + 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local wraps = 0
  for _, t in ipairs(threads) do
    wraps = wraps + (t:get("wrapped") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"p999_us":%d,"max_us":%d,"mean_us":%.1f,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"wrapped":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean,
    e.connect, e.read, e.write, e.status, e.timeout, wraps))
end
