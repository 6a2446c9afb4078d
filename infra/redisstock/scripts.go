package redisstock

import (
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Script return codes. Every outcome of every script has its own number, so a
// reply decoded by the wrong function can never pass for a valid outcome. The
// Lua sources below refer to them by name ($NAME) and are expanded from these
// constants, so Go and Lua cannot drift apart.
const (
	// reserve: {code, stock, gen, order_id}
	codeReserveAccepted   = 10
	codeReserveNotFound   = 11
	codeReserveNotStarted = 12
	codeReserveEnded      = 13
	codeReserveSoldOut    = 14
	codeReserveAlready    = 15
	codeReserveTicketUsed = 16

	// open: code
	codeOpenCreated   = 20
	codeOpenRefreshed = 21

	// setwindow: code
	codeWindowSet      = 30
	codeWindowNotFound = 31

	// restock: {code, gen}
	codeRestockApplied  = 40
	codeRestockRepeat   = 41
	codeRestockNotFound = 42

	// release: {code, gen}
	codeReleaseReleased  = 60
	codeReleaseUnknown   = 61
	codeReleaseNotFound  = 63
	codeReleaseBadRecord = 64

	// repair: {code, gen}
	codeRepairApplied  = 70
	codeRepairConflict = 71

	// return: {code, units, gen}
	codeReturnDone     = 80
	codeReturnNotFound = 81

	// move out: {code, units}; move in: code; move close: code
	codeMoveOut      = 90
	codeMoveEmpty    = 91
	codeMoveNotFound = 92
	codeMoveIn       = 93
	codeMoveRepeat   = 94
	codeMoveClosed   = 95
)

// nowMS is the Lua that reads the ledger's clock, Redis TIME, in
// milliseconds. Every age the ledger keeps (acceptance, next look, overdue)
// is measured on this one clock, so a skew between API instances can never
// make a fresh order look old. Redis 5+ replicates script effects, which is
// what allows TIME inside a script that writes.
const nowMS = `local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`

// reserveSrc reserves a batch of orders on one stock bucket: for each, in
// order, it checks the window, the ticket, the one-order-per-user rule and
// the stock, and deducts one unit for each accepted order. The answer for
// each order is exactly what a script run for that order alone, one after
// the other, would give; a batch of one is the single case. One call per
// batch instead of one per order is what makes the hot bucket's Redis
// thread cheap per order: the script is entered once, the sale hash and the
// clock are read once, and the writes of every accepted order go out as one
// HINCRBY, two HSET and one ZADD (see docs/BENCHMARKS.md).
//
// KEYS: sale, buyers, pending, outbox[, used-ticket marks...]
// ARGV: first-look delay ms, then six values per order: now_ms (the order's
// creation time, for the window), user, order_id, encoded order, the index
// in KEYS of its used-ticket mark (0 without a ticket), the mark's ttl ms.
//
// Reply: four values per order, in order: code, stock, gen, order_id.
//
// The checks run in the order the domain promises: window, then the
// one-order-per-user rule, then stock, so a repeat buyer on a sold-out item
// hears that they already hold an order. The pending record gets the
// ledger's acceptance time appended, and the outbox entry is due for the
// relay's first look (is it published yet?) after the first-look delay.
// seen carries the batch's own acceptances, so a second order of one user
// in the same batch is refused as it would be in the next one.
const reserveSrc = `
local first = tonumber(ARGV[1])
local n = (#ARGV - 1) / 6
local out = {}
local s = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'gen')
if not s[1] then
  for i = 1, n do
    out[4 * i - 3] = $RESERVE_NOT_FOUND
    out[4 * i - 2] = 0
    out[4 * i - 1] = 0
    out[4 * i] = ''
  end
  return out
end
local stock = tonumber(s[1])
local starts, ends = tonumber(s[2]), tonumber(s[3])
local gen = tonumber(s[4]) or 0
local now_ms
local taken = 0
local seen = {}
local buyers, pending, outbox = {}, {}, {}
for i = 1, n do
  local a = 6 * i - 4
  local at, user, id = tonumber(ARGV[a]), ARGV[a + 1], ARGV[a + 2]
  local code, held = nil, ''
  if at < starts then
    code = $RESERVE_NOT_STARTED
  elseif at >= ends then
    code = $RESERVE_ENDED
  else
` + reserveTicketSrc + `
    if not code then
      local h = seen[user] or redis.call('HGET', KEYS[2], user)
      if h then
        -- The same order again is a replay (a pipeline retried after a lost
        -- reply): answer as the first attempt did instead of refusing the
        -- user's own order.
        held = h
        if h == id then code = $RESERVE_ACCEPTED else code = $RESERVE_ALREADY end
      elseif stock <= 0 then
        code = $RESERVE_SOLD_OUT
      else
        if not now_ms then
          -- The ledger's clock, as nowMS reads it, once per batch.
          local t = redis.call('TIME')
          now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        end
        stock = stock - 1
        taken = taken + 1
        seen[user] = id
        buyers[#buyers + 1] = user
        buyers[#buyers + 1] = id
        pending[#pending + 1] = id
        pending[#pending + 1] = ARGV[a + 3] .. '|' .. now_ms
        outbox[#outbox + 1] = now_ms + first
        outbox[#outbox + 1] = id
        code, held = $RESERVE_ACCEPTED, id
      end
    end
  end
  out[4 * i - 3] = code
  out[4 * i - 2] = stock
  out[4 * i - 1] = gen
  out[4 * i] = held
end
if taken > 0 then
  redis.call('HINCRBY', KEYS[1], 'stock', -taken)
  redis.call('HSET', KEYS[2], unpack(buyers))
  redis.call('HSET', KEYS[3], unpack(pending))
  redis.call('ZADD', KEYS[4], unpack(outbox))
end
return out
`

// reserveTicketSrc is the ticket block of reserveSrc (app/fairness): it
// consumes the order's single-use purchase ticket in the same atomic step
// as the reservation, so a replayed ticket never reaches the one-per-user
// rule or the stock, whatever the number of connections it comes on.
//
// KEYS[tk] is the ticket's used mark, in the same hash tag as the buyers key
// (usedTicketKey); it holds the id of the order that consumed the ticket and
// lives a little longer than the ticket does. The same order again (a
// pipeline retried after a lost reply) is not a replay and goes on to the
// buyers check, which answers as the first attempt did. The ticket is
// consumed once the window admits the order, whatever the outcome after it
// (accepted, already purchased, sold out): every attempt that reaches the
// stock costs a ticket, and one refused before it (window, rate limits, an
// unreachable ledger) does not. Two orders with one ticket in one batch
// are a replay like two in two batches: the mark is set before the next
// order is looked at.
const reserveTicketSrc = `    local tk = tonumber(ARGV[a + 4])
    if tk > 0 then
      local used = redis.call('GET', KEYS[tk])
      if used and used ~= id then
        code = $RESERVE_TICKET_USED
      else
        redis.call('SET', KEYS[tk], id, 'PX', ARGV[a + 5])
      end
    end`

// openSrc creates a sale (or one stock bucket of it), or refreshes the
// window and price of a live one without touching its stock.
//
// KEYS: sale
// ARGV: total, starts_ms, ends_ms, price, buckets
const openSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'total', ARGV[1],
    'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4], 'gen', 0, 'buckets', ARGV[5])
  return $OPEN_CREATED
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4], 'buckets', ARGV[5])
return $OPEN_REFRESHED
`

// setWindowSrc moves the window of a live sale.
//
// KEYS: sale
// ARGV: starts_ms, ends_ms
const setWindowSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return $WINDOW_NOT_FOUND
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2])
return $WINDOW_SET
`

// restockSrc adds units once per (item, key). Keys are kept as long as the
// sale's hash, like the database keeps its restock rows, so a retry can
// never apply twice however late it comes.
//
// KEYS: sale, restocks
// ARGV: add, key
const restockSrc = `
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
`

// settleSrc drops the ledger's records of confirmed orders of one item. The
// buyers entry stays: the user keeps their one order. One HDEL and one ZREM
// take a whole chunk of ids: a call from Lua costs more than the work of
// one more member (see luaChunk).
//
// KEYS: pending, outbox
// ARGV: order ids
const settleSrc = `
local n = 0
for i = 1, #ARGV, $CHUNK do
  local j = math.min(i + $CHUNK - 1, #ARGV)
  n = n + redis.call('HDEL', KEYS[1], unpack(ARGV, i, j))
  redis.call('ZREM', KEYS[2], unpack(ARGV, i, j))
end
return n
`

// releaseSrc gives a failed order's unit and its user's slot back, once:
// the pending record is the proof that the unit is still held, and it is
// deleted in the same step.
//
// KEYS: sale, buyers, pending, outbox
// ARGV: order_id
//
// The pending record starts with "<user>|"; the user alphabet has no '|', so
// a plain find is all the parsing Lua does.
const releaseSrc = `
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
`

// postponeSrc makes orders of one item due for their next look after a
// delay, by the ledger's clock; an order no longer in the outbox (settled or
// released meanwhile) is left out rather than brought back (XX). They all
// get the same score, so one ZADD takes a chunk of them.
//
// KEYS: outbox
// ARGV: delay ms, order ids...
const postponeSrc = nowMS + `
local due = now_ms + tonumber(ARGV[1])
local t = {}
for i = 2, #ARGV do
  t[#t + 1] = due
  t[#t + 1] = ARGV[i]
  if #t >= $CHUNK or i == #ARGV then
    redis.call('ZADD', KEYS[1], 'XX', unpack(t))
    t = {}
  end
end
return now_ms
`

// dueSrc takes up to limit orders of one item whose next look is due and
// postpones each by the lease, so concurrent relays split the work instead
// of all taking the same orders. An outbox entry without a pending record
// (its record was lost) is dropped.
//
// KEYS: outbox, pending
// ARGV: limit, lease ms
// Reply: {now_ms, id1, record1, id2, record2, ...}
const dueSrc = nowMS + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {now_ms}
for _, id in ipairs(ids) do
  local rec = redis.call('HGET', KEYS[2], id)
  if rec then
    redis.call('ZADD', KEYS[1], 'XX', now_ms + tonumber(ARGV[2]), id)
    out[#out + 1] = id
    out[#out + 1] = rec
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
`

// repairSrc applies a repair computed from a snapshot, if the sale has not
// moved in a way that would make it wrong.
//
// A sale that existed: applied only if gen is unchanged (restocks and
// releases bump it), and then as a delta on stock, so purchases and settles
// that ran since the snapshot, which move units between stock, pending and
// the database without changing their sum, stay counted. A sale that was
// missing: created only if it is still missing. Either way the new gen is
// above every generation an instance can have seen, so stale sold-out flags
// clear.
//
// KEYS: sale
// ARGV: existed (0/1), snapshot gen, stock delta (existed) or stock (missing),
// total, starts_ms, ends_ms, price, buckets
const repairSrc = nowMS + `
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
`

// returnSrc gives back the units of confirmed orders that the database has
// cancelled or expired, exactly once per order: the returned hash, keyed by
// order id, is the proof, and it is written in the same step as the stock.
// The buyers entry stays, because a buyer whose order lapsed keeps their
// slot. A sale that is missing (lost, being rebuilt) is left alone and
// nothing is marked: the rebuild counts the database's returns itself and
// restores the marks first.
//
// KEYS: sale, returned
// ARGV: order ids
const returnSrc = `
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
`

// moveOutSrc is step 1 of a move of units between two stock buckets of one
// item: it takes up to max units (half the bucket's stock, rounded up) out
// of the source and, in the same step, writes the journal entry that says
// where they go. From here until step 2 the units are in transit: the
// journal, in the source's slot, is their only record, and recovery replays
// it.
//
// A repeat of the step for a move id still in the journal takes nothing
// and answers the units it took the first time: a client may send the
// script again when its reply was lost (go-redis retries a command after a
// read that failed on the network, and a cluster pipeline re-sends a node's
// batch), and taking the units twice would overwrite the journal's count
// and lose the first ones. The same holds once the move is closed (another
// instance's fill, replay or RecoverMoves finished it while the reply was
// on its way): the closed hash keeps what each closed move took, for as
// long as the sale, so a late repeat answers that and takes nothing. Without
// it the repeat took the units again, step 2 answered REPEAT, and they were
// lost: [1 3 3] became [0 3 5].
//
// KEYS: source sale, source moves, source closed
// ARGV: move id, destination bucket, max units
const moveOutSrc = `
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
`

// moveInSrc is step 2: it credits the units to the destination once per
// move id; the moved hash, in the destination's slot, is the proof, written
// in the same step, and kept as long as the sale, so a replay however late
// (a recovery racing the mover, a mover that resumes after a pause) is a
// repeat.
//
// KEYS: destination sale, destination moved
// ARGV: move id, units
const moveInSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return $MOVE_NOT_FOUND
end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then
  return $MOVE_REPEAT
end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[2])
redis.call('HINCRBY', KEYS[1], 'mseq', 1)
return $MOVE_IN
`

// moveCloseSrc is step 3: it drops the journal entry, after step 2 is known
// to have happened, and records the units the move took in the closed hash
// in the same step, so a repeat of step 1 that arrives later takes nothing
// (see moveOutSrc). A missing sale is not recreated by the counter bump.
//
// KEYS: source sale, source moves, source closed
// ARGV: move id
const moveCloseSrc = `
local open = redis.call('HGET', KEYS[2], ARGV[1])
if open then
  redis.call('HDEL', KEYS[2], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], string.sub(open, string.find(open, '|', 1, true) + 1))
  if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HINCRBY', KEYS[1], 'mseq', 1)
  end
end
return $MOVE_CLOSED
`

// bucketSrc reads one stock bucket in one atomic step: its figures, its
// move counter, its open journal entries and, by mode, nothing more (0),
// the pending and overdue counts (1), or every pending record too (2).
//
// Counting the overdue reads every pending record, so mode 1 does it only
// for at most ARGV[3] of them and answers overdue -1 above that: a worker
// outage leaves a backlog of 100k pending orders, and a script that walks
// them holds Redis's one thread for 50-70 ms, long enough to time out the
// purchases queued behind it. The caller then counts in chunks
// (countOverdue).
//
// KEYS: sale, pending, moves
// ARGV: mode, overdue ms, scan limit
// Reply: {exists, stock, total, gen, starts_ms, ends_ms, price, mseq, now_ms,
// pending, overdue, moves, move_id1, entry1, ..., order_id1, record1, ...}
const bucketSrc = nowMS + `
local s = redis.call('HMGET', KEYS[1], 'stock', 'total', 'gen', 'starts_ms', 'ends_ms', 'price', 'mseq')
local out
if s[1] then
  out = {1, tonumber(s[1]), tonumber(s[2]), tonumber(s[3]) or 0, tonumber(s[4]), tonumber(s[5]),
    tonumber(s[6]) or 0, tonumber(s[7]) or 0, now_ms}
else
  out = {0, 0, 0, 0, 0, 0, 0, 0, now_ms}
end
local mode = tonumber(ARGV[1])
local npending, overdue = 0, 0
if mode >= 1 then
  npending = redis.call('HLEN', KEYS[2])
  if npending > tonumber(ARGV[3]) then
    overdue = -1
  else
    local limit = now_ms - tonumber(ARGV[2])
    for _, rec in ipairs(redis.call('HVALS', KEYS[2])) do
      local acc = tonumber(string.match(rec, '.*|(%d+)'))
      if acc and acc < limit then
        overdue = overdue + 1
      end
    end
  end
end
local moves = redis.call('HGETALL', KEYS[3])
out[#out + 1] = npending
out[#out + 1] = overdue
out[#out + 1] = #moves / 2
for i = 1, #moves do
  out[#out + 1] = moves[i]
end
if mode == 2 then
  local p = redis.call('HGETALL', KEYS[2])
  for i = 1, #p do
    out[#out + 1] = p[i]
  end
end
return out
`

var (
	moveOutScript   = newScript(moveOutSrc)
	moveInScript    = newScript(moveInSrc)
	moveCloseScript = newScript(moveCloseSrc)
	bucketScript    = newScript(bucketSrc)
	returnScript    = newScript(returnSrc)
	reserveScript   = newScript(reserveSrc)
	openScript      = newScript(openSrc)
	setWindowScript = newScript(setWindowSrc)
	restockScript   = newScript(restockSrc)
	settleScript    = newScript(settleSrc)
	releaseScript   = newScript(releaseSrc)
	postponeScript  = newScript(postponeSrc)
	dueScript       = newScript(dueSrc)
	repairScript    = newScript(repairSrc)
)

// luaChunk is the most values a script passes to one command with unpack.
// Lua 5.1's unpack fails past its C stack (about 8000 values), and the ids
// of one Settle or MarkPublished call have no bound of their own.
const luaChunk = 1000

// newScript expands the $NAME code placeholders and panics on any left over,
// so a typo in a script fails at package init, not in production.
func newScript(src string) *redis.Script {
	codes := []struct {
		name string
		code int
	}{
		// No name is a prefix of another, so the replacement order of
		// strings.Replacer cannot matter.
		{"$RESERVE_ACCEPTED", codeReserveAccepted},
		{"$RESERVE_NOT_FOUND", codeReserveNotFound},
		{"$RESERVE_NOT_STARTED", codeReserveNotStarted},
		{"$RESERVE_ENDED", codeReserveEnded},
		{"$RESERVE_SOLD_OUT", codeReserveSoldOut},
		{"$RESERVE_ALREADY", codeReserveAlready},
		{"$RESERVE_TICKET_USED", codeReserveTicketUsed},
		{"$OPEN_CREATED", codeOpenCreated},
		{"$OPEN_REFRESHED", codeOpenRefreshed},
		{"$WINDOW_SET", codeWindowSet},
		{"$WINDOW_NOT_FOUND", codeWindowNotFound},
		{"$RESTOCK_APPLIED", codeRestockApplied},
		{"$RESTOCK_REPEAT", codeRestockRepeat},
		{"$RESTOCK_NOT_FOUND", codeRestockNotFound},
		{"$RELEASE_RELEASED", codeReleaseReleased},
		{"$RELEASE_UNKNOWN", codeReleaseUnknown},
		{"$RELEASE_NOT_FOUND", codeReleaseNotFound},
		{"$RELEASE_BAD_RECORD", codeReleaseBadRecord},
		{"$REPAIR_APPLIED", codeRepairApplied},
		{"$REPAIR_CONFLICT", codeRepairConflict},
		{"$RETURN_DONE", codeReturnDone},
		{"$RETURN_NOT_FOUND", codeReturnNotFound},
		{"$MOVE_OUT", codeMoveOut},
		{"$MOVE_EMPTY", codeMoveEmpty},
		{"$MOVE_NOT_FOUND", codeMoveNotFound},
		{"$MOVE_IN", codeMoveIn},
		{"$MOVE_REPEAT", codeMoveRepeat},
		{"$MOVE_CLOSED", codeMoveClosed},
	}
	pairs := make([]string, 0, 2*len(codes)+2)
	for _, c := range codes {
		pairs = append(pairs, c.name, strconv.Itoa(c.code))
	}
	pairs = append(pairs, "$CHUNK", strconv.Itoa(luaChunk))
	out := strings.NewReplacer(pairs...).Replace(src)
	if strings.Contains(out, "$") {
		panic("redisstock: unexpanded code placeholder in script:\n" + out)
	}
	return redis.NewScript(out)
}
