-- move_in.lua is step 2: it credits the units to the destination once per
-- move id; the moved hash, in the destination's slot, is the proof, written
-- in the same step, and kept as long as the sale, so a replay however late
-- (a recovery racing the mover, a mover that resumes after a pause) is a
-- repeat.
--
-- KEYS: destination sale, destination moved
-- ARGV: move id, units
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return $MOVE_NOT_FOUND
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return $MOVE_REPEAT
end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'mseq', 1)
return $MOVE_IN
