-- settle.lua drops the ledger's records of confirmed orders of one item. The
-- buyers entry stays: the user keeps their one order. One HDEL and one ZREM
-- take a whole chunk of ids: a call from Lua costs more than the work of
-- one more member (see luaChunk).
--
-- KEYS: pending, outbox
-- ARGV: order ids
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local n = 0
for i = 1, #ARGV, $CHUNK do
  local j = math.min(i + $CHUNK - 1, #ARGV)
  n = n + redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  redis.call('ZREM', KEYS[2], unpack(ARGV, i, j))
end
return n
