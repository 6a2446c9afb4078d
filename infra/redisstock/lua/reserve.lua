-- reserve.lua reserves a batch of orders on one stock bucket: for each, in
-- order, it checks the window, the ticket, the one-order-per-user rule and
-- the stock, and deducts one unit for each accepted order. The answer for
-- each order is exactly what a script run for that order alone, one after
-- the other, would give; a batch of one is the single case. One call per
-- batch instead of one per order is what makes the hot bucket's Redis
-- thread cheap per order: the script is entered once, the sale hash and the
-- clock are read once, and the writes of every accepted order go out as one
-- HINCRBY, two HSET and one ZADD (see docs/BENCHMARKS.md).
--
-- KEYS: sale, buyers, pending, outbox[, used-ticket marks...]
-- ARGV: first-look delay ms, then six values per order: the order's
-- creation time in ms (unused by the script: the window is judged on Redis
-- TIME), user, order_id, encoded order, the index in KEYS of its
-- used-ticket mark (0 without a ticket), the mark's ttl ms.
--
-- Reply: four values per order, in order: code, stock, gen, order_id.
--
-- The checks run in the order the domain promises: window (on the ledger's
-- clock, Redis TIME, read once per batch), then the
-- one-order-per-user rule, then stock, so a repeat buyer on a sold-out item
-- hears that they already hold an order. The pending record gets the
-- ledger's acceptance time appended, and the outbox entry is due for the
-- relay's first look (is it published yet?) after the first-look delay.
-- seen carries the batch's own acceptances, so a second order of one user
-- in the same batch is refused as it would be in the next one.
--
-- The ticket block (the tk lines, for app/fairness) consumes
-- the order's single-use purchase ticket in the same atomic step
-- as the reservation, so a replayed ticket never reaches the stock,
-- whatever the number of connections it comes on. A replay by a user who
-- holds an order hears already purchased, naming it: a buyer whose 202 was
-- lost and who tries again learns the truth, not that the ticket is bad.
--
-- KEYS[tk] is the ticket's used mark, in the same hash tag as the buyers key
-- (usedTicketKey); it holds the id of the order that consumed the ticket and
-- lives a little longer than the ticket does. The same order again (a
-- pipeline retried after a lost reply) is not a replay and goes on to the
-- buyers check, which answers as the first attempt did. The ticket is
-- consumed once the window admits the order, whatever the outcome after it
-- (accepted, already purchased, sold out): every attempt that reaches the
-- stock costs a ticket, and one refused before it (window, rate limits, an
-- unreachable ledger) does not. Two orders with one ticket in one batch
-- are a replay like two in two batches: the mark is set before the next
-- order is looked at.
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
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
-- The window is judged on the ledger's clock, as every age is, so an API
-- instance whose clock runs ahead cannot open the sale early.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window
if now_ms < starts then
  window = $RESERVE_NOT_STARTED
elseif now_ms >= ends then
  window = $RESERVE_ENDED
end
local taken = 0
local seen = {}
local buyers, pending, outbox = {}, {}, {}
for i = 1, n do
  local a = 6 * i - 4
  local user, id = ARGV[a + 1], ARGV[a + 2]
  local code, held = nil, ''
  if window then
    code = window
    -- The same order again, resent after a lost reply, answers as the
    -- first attempt did even if the window closed in between.
    if redis.call('HGET', KEYS[2], user) == id then
      code, held = $RESERVE_ACCEPTED, id
    end
  else
    local tk = tonumber(ARGV[a + 4])
    if tk > 0 then
      local used = redis.call('GET', KEYS[tk])
      if used and used ~= id then
        -- A ticket is its user's (app/fairness checked the signature), so a
        -- used one comes back from that user: if they hold an order, say
        -- so and name it (their first answer may have been lost); only a
        -- user who holds nothing hears that the ticket is spent.
        local h = seen[user] or redis.call('HGET', KEYS[2], user)
        if h then
          code, held = $RESERVE_ALREADY, h
        else
          code = $RESERVE_TICKET_USED
        end
      else
        redis.call('SET', KEYS[tk], id, 'PX', ARGV[a + 5])
      end
    end
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
