-- due.lua takes up to limit orders of one item whose next look is due and
-- postpones each by the lease, so concurrent relays split the work instead
-- of all taking the same orders. An outbox entry without a pending record
-- (its record was lost) is dropped.
--
-- KEYS: outbox, pending
-- ARGV: limit, lease ms
-- Reply: {now_ms, id1, record1, id2, record2, ...}
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {now_ms}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then
    redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = rec
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
