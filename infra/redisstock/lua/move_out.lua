-- move_out.lua is step 1 of a move of units between two stock buckets of one
-- item: it takes up to max units (half the bucket's stock, rounded up) out
-- of the source and, in the same step, writes the journal entry that says
-- where they go. From here until step 2 the units are in transit: the
-- journal, in the source's slot, is their only record, and recovery replays
-- it.
--
-- A repeat of the step for a move id still in the journal takes nothing
-- and answers the units it took the first time: a client may send the
-- script again when its reply was lost (go-redis retries a command after a
-- read that failed on the network, and a cluster pipeline re-sends a node's
-- batch), and taking the units twice would overwrite the journal's count
-- and lose the first ones. The same holds once the move is closed (another
-- instance's fill, replay or RecoverMoves finished it while the reply was
-- on its way): the closed hash keeps what each closed move took, for as
-- long as the sale, so a late repeat answers that and takes nothing. Without
-- it the repeat took the units again, step 2 answered REPEAT, and they were
-- lost: [1 3 3] became [0 3 5].
--
-- KEYS: source sale, source moves, source closed
-- ARGV: move id, destination bucket, max units
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local open = redis.call('HGET', KEYS[2], ARGV[1])
if open then
  return {$MOVE_OUT, tonumber(string.sub(open, string.find(open, '|', 1, true) + 1))}
end
local closed = redis.call('HGET', KEYS[3], ARGV[1])
if closed then
  return {$MOVE_OUT, tonumber(closed)}
end
local stock = tonumber(redis.call('HGET', KEYS[1], 'stock'))
if not stock then
  return {$MOVE_NOT_FOUND, 0}
end
if stock <= 0 then
  return {$MOVE_EMPTY, 0}
end
local n = math.min(tonumber(ARGV[3]), math.ceil(stock / 2))
redis.call('HINCRBY', KEYS[1], 'stock', -n)
redis.call('HINCRBY', KEYS[1], 'mseq', 1)
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2] .. '|' .. n)
return {$MOVE_OUT, n}
