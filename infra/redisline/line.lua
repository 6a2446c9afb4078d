-- line.lua: one item's waiting room, in the item's own Redis slot.
--
-- KEYS[1] line    hash  born, shuffled, tail, served, last_ms, pre, admitted, used, expired
-- KEYS[2] queue   zset  user -> place (0: joined before the opening, not yet shuffled)
-- KEYS[3] active  zset  user -> admission expiry ms, for admissions unexpired and unused
-- KEYS[4] adm     hash  user -> admission expiry ms, for everyone ever admitted
-- KEYS[5] sale    hash  the stock ledger's sale (read only: field stock)
-- KEYS[6] buyers  hash  the stock ledger's one-order-per-user records (read only)
--
-- ARGV: op ('join', 'tick' or 'seed'), opens_ms, admit_per_second,
-- max_active, admission ttl ms, shuffle seed (32 hex digits from
-- crypto/rand), user (join) or the database's buyers of the item (seed).
--
-- Reply to join: {place}, the user's place (0 in the pre-queue). A join
-- runs once per buyer, so it reads none of the state: callers read that
-- with tick, a few times a second (a third of a join's cost in Redis, the
-- stage every instance's joins share).
-- Reply to tick and seed: {place, shuffled, tail, served, stock, active,
-- admitted, used, expired, pre, now_ms, born_us}. place is 0 for tick,
-- and for seed 1 if it set used; stock is -1 when the ledger has no sale;
-- born_us is when this line's hash was created: it changes only when the
-- line was lost (a Redis wipe) and begun again, which tells an instance
-- that the places it remembers are gone.
--
-- Guarantees, all on Redis's clock (TIME) so that instances with skewed
-- clocks agree:
--   * Joining twice keeps the first place.
--   * The first call at or after the opening shuffles the pre-queue, once,
--     with a Fisher-Yates whose draws are SHA1(seed:i), a function keyed by
--     a fresh 128-bit secret seed: nobody who does not know the seed can
--     predict or steer the order, and the seed is never stored. Everyone in
--     the pre-queue gets a place before anyone who joins later; later
--     joiners get places in join order.
--   * tick admits the next places in order at admit_per_second, whichever
--     instance calls it: the serving counter advances by the time elapsed
--     since it last moved, so two instances polling together admit at the
--     rate, not twice it. Unused credit is dropped when the line cannot
--     use it, and at most one second of credit is ever banked.
--   * Admissions never outnumber the units: unexpired, unused admissions
--     are at most the ledger's stock (and max_active when set). An
--     admission is used when its user holds an order (the buyers record);
--     one that expires unused frees its place for the next in line, and so
--     does a unit that comes back to the stock (cancel, expiry, failure).
--   * seed (the reconciler, rebuilding a lost sale) sets used to the
--     database's buyers, each of whom used an admission, only in a line
--     that has admitted nobody and counted no use: one begun again after
--     the loss, which cannot admit while the ledger has no sale. It never
--     opens the line (it is not told the opening).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local opens, rate = tonumber(ARGV[2]), tonumber(ARGV[3])
local max_active, ttl = tonumber(ARGV[4]), tonumber(ARGV[5])
local seed = ARGV[6]

local function num(field)
  return tonumber(redis.call('HGET', KEYS[1], field)) or 0
end

-- One read for the two fields every call needs first.
local head = redis.call('HMGET', KEYS[1], 'shuffled', 'born')

-- In microseconds: a line lost and begun again within the same
-- millisecond still gets a new mark.
if not head[2] then
  redis.call('HSET', KEYS[1], 'born', tonumber(t[1]) * 1000000 + tonumber(t[2]))
end

-- shuffle gives the pre-queue its places 1..n in a secret random order.
local function shuffle()
  local pre = redis.call('ZRANGEBYSCORE', KEYS[2], 0, 0)
  for i = #pre, 2, -1 do
    local r = tonumber(string.sub(redis.sha1hex(seed .. ':' .. i), 1, 13), 16)
    local j = (r % i) + 1
    pre[i], pre[j] = pre[j], pre[i]
  end
  for i = 1, #pre do
    redis.call('ZADD', KEYS[2], i, pre[i])
  end
  redis.call('HSET', KEYS[1], 'shuffled', 1, 'tail', #pre, 'served', 0, 'last_ms', now)
end

local shuffled = tonumber(head[1]) == 1
if not shuffled and now >= opens and op ~= 'seed' then
  shuffle()
  shuffled = true
end

local place = 0
if op == 'join' then
  local user = ARGV[7]
  local had = redis.call('ZSCORE', KEYS[2], user)
  if had then
    place = tonumber(had)
  elseif shuffled then
    place = redis.call('HINCRBY', KEYS[1], 'tail', 1)
    redis.call('ZADD', KEYS[2], place, user)
  else
    redis.call('ZADD', KEYS[2], 0, user)
    redis.call('HINCRBY', KEYS[1], 'pre', 1)
  end
  return {place}
end

if op == 'seed' then
  local buyers = tonumber(ARGV[7])
  if buyers > 0 and num('admitted') == 0 and num('used') == 0 then
    redis.call('HSET', KEYS[1], 'used', buyers)
    place = 1
  end
end

local stock = -1
local s = redis.call('HGET', KEYS[5], 'stock')
if s then stock = tonumber(s) end

if op == 'tick' and shuffled then
  -- Sweep: an admission is used once its user holds an order, and lapses
  -- at its expiry; either way it no longer holds a unit's chance.
  local act = redis.call('ZRANGE', KEYS[3], 0, -1, 'WITHSCORES')
  for i = 1, #act, 2 do
    local u, exp = act[i], tonumber(act[i + 1])
    if redis.call('HEXISTS', KEYS[6], u) == 1 then
      redis.call('ZREM', KEYS[3], u)
      redis.call('HINCRBY', KEYS[1], 'used', 1)
    elseif exp <= now then
      redis.call('ZREM', KEYS[3], u)
      redis.call('HINCRBY', KEYS[1], 'expired', 1)
    end
  end
  local active = redis.call('ZCARD', KEYS[3])
  local served, tail = num('served'), num('tail')
  local last = tonumber(redis.call('HGET', KEYS[1], 'last_ms')) or now
  if now - last > 1000 then last = now - 1000 end
  local credit = math.floor((now - last) * rate / 1000)
  local room = stock - active
  if max_active > 0 and max_active - active < room then room = max_active - active end
  local n = math.min(credit, room, tail - served)
  if n < 0 then n = 0 end
  if n > 0 then
    local users = redis.call('ZRANGEBYSCORE', KEYS[2], served + 1, served + n)
    local exp = now + ttl
    for _, u in ipairs(users) do
      redis.call('ZADD', KEYS[3], exp, u)
      redis.call('HSET', KEYS[4], u, exp)
    end
    redis.call('HINCRBY', KEYS[1], 'admitted', n)
    served = served + n
  end
  if n == credit then
    -- Every credit was spent: keep the remainder of the interval.
    last = last + n * 1000 / rate
  else
    last = now
  end
  redis.call('HSET', KEYS[1], 'served', served, 'last_ms', string.format('%.3f', last))
end

-- One read for the reply's fields: each redis.call is a command's
-- dispatch inside Redis.
local f = redis.call('HMGET', KEYS[1], 'tail', 'served', 'admitted', 'used', 'expired', 'pre', 'born')
for i = 1, 7 do f[i] = tonumber(f[i]) or 0 end
return {place, shuffled and 1 or 0, f[1], f[2], stock,
  redis.call('ZCARD', KEYS[3]), f[3], f[4], f[5], f[6], now, f[7]}
