-- move_close.lua is step 3: it drops the journal entry, after step 2 is known
-- to have happened. A missing sale is not recreated by the counter bump.
--
-- KEYS: source sale, source moves
-- ARGV: move id
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'mseq', 1)
end
return $MOVE_CLOSED
