-- The synced record of one product, packed into one field of a bucket hash (`S:<n>`, field =
-- product id), so a synced product costs a listpack entry instead of a key (docs/design.md,
-- Memory). Prepended to the scripts that read or write it.
--   byte 1      kind: 'u' synced upsert, 'd' synced delete (the tombstone), '-' nothing synced
--   bytes 2-9   synced version, big-endian double (versions are integer microseconds < 2^53)
--   16 bytes    the synced content hash, raw (kind 'u' only)
--   the rest    the latest RING delivery-id digests (DIGEST bytes each), newest last
local RING, DIGEST = 3, 6

local function rec_read(raw)
  if not raw then
    return '-', nil, '', ''
  end
  local kind = string.sub(raw, 1, 1)
  local sv = struct.unpack('>d', raw, 2)
  local off = 10
  local sh = ''
  if kind == 'u' then
    sh = string.sub(raw, 10, 25)
    off = 26
  end
  if kind == '-' then
    sv = nil
  end
  return kind, sv, sh, string.sub(raw, off)
end

local function rec_pack(kind, sv, sh, ring)
  if kind ~= 'u' then
    sh = ''
  end
  return kind .. struct.pack('>d', sv or 0) .. sh .. ring
end

local function ring_has(ring, digest)
  for i = 1, #ring, DIGEST do
    if string.sub(ring, i, i + DIGEST - 1) == digest then
      return true
    end
  end
  return false
end

local function ring_add(ring, digest)
  ring = ring .. digest
  if #ring > RING * DIGEST then
    ring = string.sub(ring, -RING * DIGEST)
  end
  return ring
end

local function hex(s)
  return (string.gsub(s, '.', function(c) return string.format('%02x', string.byte(c)) end))
end

local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1e6
end

-- Seconds a product's cooldown still holds it back (burst coalescing), 0 when none.
local function cooling(cool_key)
  local ms = redis.call('PTTL', cool_key)
  if ms > 0 then
    return ms / 1000
  end
  return 0
end
