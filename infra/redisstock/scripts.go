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

	// claim: one code per id
	codeClaimClaimed = 50
	codeClaimFailed  = 51
	codeClaimUnknown = 52

	// fail (expire and reject): {code, gen}
	codeFailReleased  = 60
	codeFailUnknown   = 61
	codeFailFenced    = 62
	codeFailNotFound  = 63
	codeFailBadRecord = 64
)

// reserveSrc deducts one unit for one user.
//
// KEYS: sale, buyers, pending, outbox
// ARGV: now_ms, user, order_id, encoded order
//
// The checks run in the order the domain promises: window, then the
// one-order-per-user rule, then stock, so a repeat buyer on a sold-out item
// hears that they already hold an order.
const reserveSrc = `
local s = redis.call('HMGET', KEYS[1], 'stock', 'starts_ms', 'ends_ms', 'gen')
if not s[1] then
  return {$RESERVE_NOT_FOUND, 0, 0, ''}
end
local stock = tonumber(s[1])
local gen = tonumber(s[4]) or 0
local now = tonumber(ARGV[1])
if now < tonumber(s[2]) then
  return {$RESERVE_NOT_STARTED, stock, gen, ''}
end
if now >= tonumber(s[3]) then
  return {$RESERVE_ENDED, stock, gen, ''}
end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then
  -- The same order again is a replay (a pipeline retried after a lost reply):
  -- answer as the first attempt did instead of refusing the user's own order.
  if held == ARGV[3] then
    return {$RESERVE_ACCEPTED, stock, gen, held}
  end
  return {$RESERVE_ALREADY, stock, gen, held}
end
if stock <= 0 then
  return {$RESERVE_SOLD_OUT, stock, gen, ''}
end
stock = redis.call('HINCRBY', KEYS[1], 'stock', -1)
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('ZADD', KEYS[4], ARGV[1], ARGV[3])
return {$RESERVE_ACCEPTED, stock, gen, ARGV[3]}
`

// openSrc creates a sale, or refreshes the window and price of a live one
// without touching its stock.
//
// KEYS: sale
// ARGV: total, starts_ms, ends_ms, price
const openSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'total', ARGV[1],
    'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4], 'gen', 0)
  return $OPEN_CREATED
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4])
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

// restockSrc adds units once per idempotency key.
//
// KEYS: sale [, idem]   (idem is absent when the caller gave no key)
// ARGV: add, idem_ttl_ms
const restockSrc = `
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {$RESTOCK_NOT_FOUND, 0}
end
if KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then
  return {$RESTOCK_REPEAT, tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0}
end
redis.call('HINCRBY', KEYS[1], 'stock', ARGV[1])
redis.call('HINCRBY', KEYS[1], 'total', ARGV[1])
local gen = redis.call('HINCRBY', KEYS[1], 'gen', 1)
if KEYS[2] then
  redis.call('SET', KEYS[2], gen, 'PX', ARGV[2])
end
return {$RESTOCK_APPLIED, gen}
`

// claimSrc fences pending orders of one item against expiry.
//
// KEYS: pending, failed, claimed
// ARGV: order ids
const claimSrc = `
local out = {}
for i, id in ipairs(ARGV) do
  -- failed first: a failed order's unit is already back on sale, so it must
  -- never be confirmed, whatever else is recorded.
  if redis.call('HEXISTS', KEYS[2], id) == 1 then
    out[i] = $CLAIM_FAILED
  elseif redis.call('HEXISTS', KEYS[1], id) == 1 then
    redis.call('SADD', KEYS[3], id)
    out[i] = $CLAIM_CLAIMED
  else
    out[i] = $CLAIM_UNKNOWN
  end
end
return out
`

// settleSrc drops the ledger's records of confirmed orders of one item. The
// buyers entry stays: the user keeps their one order.
//
// KEYS: pending, outbox, claimed
// ARGV: order ids
const settleSrc = `
local n = 0
for _, id in ipairs(ARGV) do
  n = n + redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  redis.call('SREM', KEYS[3], id)
end
return n
`

// failSrc fails a pending order and gives its unit and its user's slot back.
//
// KEYS: sale, buyers, pending, outbox, claimed, failed
// ARGV: order_id, reason, fence ('1' = refuse a claimed order), failed_ttl_ms
//
// The pending record starts with "<user>|"; the user alphabet has no '|', so
// a plain find is all the parsing Lua does.
const failSrc = `
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen')) or 0
local enc = redis.call('HGET', KEYS[3], ARGV[1])
if not enc then
  return {$FAIL_UNKNOWN, gen}
end
if ARGV[3] == '1' and redis.call('SISMEMBER', KEYS[5], ARGV[1]) == 1 then
  return {$FAIL_FENCED, gen}
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  return {$FAIL_NOT_FOUND, 0}
end
local sep = string.find(enc, '|', 1, true)
if not sep then
  return {$FAIL_BAD_RECORD, gen}
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
redis.call('SREM', KEYS[5], ARGV[1])
redis.call('HSET', KEYS[6], ARGV[1], enc .. '|' .. ARGV[2])
redis.call('PEXPIRE', KEYS[6], ARGV[4])
return {$FAIL_RELEASED, gen}
`

var (
	reserveScript   = newScript(reserveSrc)
	openScript      = newScript(openSrc)
	setWindowScript = newScript(setWindowSrc)
	restockScript   = newScript(restockSrc)
	claimScript     = newScript(claimSrc)
	settleScript    = newScript(settleSrc)
	failScript      = newScript(failSrc)
)

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
		{"$OPEN_CREATED", codeOpenCreated},
		{"$OPEN_REFRESHED", codeOpenRefreshed},
		{"$WINDOW_SET", codeWindowSet},
		{"$WINDOW_NOT_FOUND", codeWindowNotFound},
		{"$RESTOCK_APPLIED", codeRestockApplied},
		{"$RESTOCK_REPEAT", codeRestockRepeat},
		{"$RESTOCK_NOT_FOUND", codeRestockNotFound},
		{"$CLAIM_CLAIMED", codeClaimClaimed},
		{"$CLAIM_FAILED", codeClaimFailed},
		{"$CLAIM_UNKNOWN", codeClaimUnknown},
		{"$FAIL_RELEASED", codeFailReleased},
		{"$FAIL_UNKNOWN", codeFailUnknown},
		{"$FAIL_FENCED", codeFailFenced},
		{"$FAIL_NOT_FOUND", codeFailNotFound},
		{"$FAIL_BAD_RECORD", codeFailBadRecord},
	}
	pairs := make([]string, 0, 2*len(codes))
	for _, c := range codes {
		pairs = append(pairs, c.name, strconv.Itoa(c.code))
	}
	out := strings.NewReplacer(pairs...).Replace(src)
	if strings.Contains(out, "$") {
		panic("redisstock: unexpanded code placeholder in script:\n" + out)
	}
	return redis.NewScript(out)
}
