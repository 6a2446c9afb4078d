-- restock.lua adds units once per (item, key). Keys are kept as long as the
-- sale's hash, like the database keeps its restock rows, so a retry can
-- never apply twice however late it comes.
--
-- KEYS: sale, restocks
-- ARGV: add, key
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {$RESTOCK_NOT_FOUND, 0}
end
if redis.call('HSETNX', KEYS[2], ARGV[2], ARGV[1]) == 0 then
  return {$RESTOCK_REPEAT, tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0}
end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'total', ARGV[1])
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
return {$RESTOCK_APPLIED, gen}
