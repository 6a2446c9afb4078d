-- repair.lua applies a repair computed from a snapshot, if the sale has not
-- moved in a way that would make it wrong.
--
-- A sale that existed: applied only if gen is unchanged (restocks and
-- releases bump it), and then as a delta on stock, so purchases and settles
-- that ran since the snapshot, which move units between stock, pending and
-- the database without changing their sum, stay counted. A sale that was
-- missing: created only if it is still missing. Either way the new gen is
-- above every generation an instance can have seen, so stale sold-out flags
-- clear.
--
-- KEYS: sale
-- ARGV: existed (0/1), snapshot gen, stock delta (existed) or stock (missing),
-- total, starts_ms, ends_ms, price, buckets
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

local existed = ARGV[1] == '1'
local exists = redis.call('EXISTS', KEYS[1]) == 1
if existed ~= exists then
  return {$REPAIR_CONFLICT, 0}
end
local gen
if exists then
  gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
  if gen ~= tonumber(ARGV[2]) then
    return {$REPAIR_CONFLICT, gen}
  end
  redis.call('HINCRBY', KEYS[1], 'stock', ARGV[3])
else
  gen = 0
  redis.call('HSET', KEYS[1], 'stock', ARGV[3])
end
gen = math.max(gen + 1, now_ms)
redis.call('HSET', KEYS[1], 'total', ARGV[4], 'starts_ms', ARGV[5], 'ends_ms', ARGV[6], 'price', ARGV[7], 'gen', gen, 'buckets', ARGV[8])
return {$REPAIR_APPLIED, gen}
