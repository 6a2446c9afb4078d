-- return.lua gives back the units of confirmed orders that the database has
-- cancelled or expired, exactly once per order: the returned hash, keyed by
-- order id, is the proof, and it is written in the same step as the stock.
-- The buyers entry stays, because a buyer whose order lapsed keeps their
-- slot. A sale that is missing (lost, being rebuilt) is left alone and
-- nothing is marked: the rebuild counts the database's returns itself and
-- restores the marks first.
--
-- KEYS: sale, returned
-- ARGV: order ids
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {$RETURN_NOT_FOUND, 0, 0}
end
local n = 0
for _, id in ipairs(ARGV) do
  n = n + redis.call('HSETNX', KEYS[2], id, 1)
end
local gen
if n > 0 then
  redis.call('HINCRBY', KEYS[1], 'stock', n)
  gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
else
  gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
end
return {$RETURN_DONE, n, gen}
