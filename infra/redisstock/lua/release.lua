-- release.lua gives a failed order's unit and its user's slot back, once:
-- the pending record is the proof that the unit is still held, and it is
-- deleted in the same step.
--
-- KEYS: sale, buyers, pending, outbox
-- ARGV: order_id
--
-- The pending record starts with "<user>|"; the user alphabet has no '|', so
-- a plain find is all the parsing Lua does.
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
local enc = redis.call('HGET', KEYS[3], ARGV[1])
if not enc then
  redis.call('ZREM', KEYS[4], ARGV[1])
  return {$RELEASE_UNKNOWN, gen}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {$RELEASE_NOT_FOUND, 0}
end
local sep = string.find(enc, '|', 1, true)
if not sep then
  return {$RELEASE_BAD_RECORD, gen}
end
local user = string.sub(enc, 1, sep - 1)
-- Only free the user's slot if it is still this order's; never another one.
if redis.call('HGET', KEYS[2], user) == ARGV[1] then
  redis.call('HDEL', KEYS[2], user)
end
redis.call('HINCRBY', KEYS[1], 'stock', 1)
gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
return {$RELEASE_RELEASED, gen}
