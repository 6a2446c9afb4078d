-- move_close.lua is step 3: it drops the journal entry, after step 2 is known
-- to have happened, and records the units the move took in the closed hash
-- in the same step, so a repeat of step 1 that arrives later takes nothing
-- (see move_out.lua). A missing sale is not recreated by the counter bump.
--
-- KEYS: source sale, source moves, source closed
-- ARGV: move id
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local open = redis.call('HGET', KEYS[2], ARGV[1])
if open then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], string.sub(open, string.find(open, '|', 1, true) + 1))
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'mseq', 1)
  end
end
return $MOVE_CLOSED
