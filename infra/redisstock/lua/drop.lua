-- drop.lua deletes the pending record of an order the database failed as a
-- phantom (sale.Fate.Phantom) and frees its user's slot, like release.lua,
-- but gives no unit back: the unit it held is one the database never had.
-- It bumps the generation, as a release does, so that a repair computed
-- before it (which counted the order as holding a unit) is refused and
-- computed again.
--
-- KEYS: sale, buyers, pending, outbox
-- ARGV: order_id
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local enc = redis.call('HGET', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if not enc then
  return {$DROP_UNKNOWN, tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0}
end
local sep = string.find(enc, '|', 1, true)
if sep then
  local user = string.sub(enc, 1, sep - 1)
  if redis.call('HGET', KEYS[2], user) == ARGV[1] then
    redis.call('HDEL', KEYS[2], user)
  end
end
redis.call('HDEL', KEYS[3], ARGV[1])
local gen = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
end
return {$DROP_DROPPED, gen}
