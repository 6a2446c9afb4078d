-- trim.lua takes up to max units off one bucket's stock, never below zero:
-- the one-sided correction of a ledger that shows more stock than the
-- database allows (reconcile.Service.Trim). It adds nothing, ever, and
-- bumps the generation when it takes, so a repair computed before it is
-- refused and computed again.
--
-- KEYS: sale
-- ARGV: max units
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local s = redis.call('HMGET', KEYS[1], 'stock', 'gen')
if not s[1] then
  return {$TRIM_NOT_FOUND, 0, 0}
end
local take = math.min(tonumber(s[1]), tonumber(ARGV[1]))
local gen = tonumber(s[2]) or 0
if take > 0 then
  redis.call('HINCRBY', KEYS[1], 'stock', -take)
  gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
else
  take = 0
end
return {$TRIM_DONE, take, gen}
