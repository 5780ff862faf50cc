-- Count a verified delivery we do not act on (other topics, pings) so the ledger balances.
-- KEYS: 1 ledger hash
redis.call('HINCRBY', KEYS[1], 'received', 1)
return redis.call('HINCRBY', KEYS[1], 'ignored', 1)
