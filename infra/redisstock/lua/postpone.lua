-- postpone.lua makes orders of one item due for their next look after a
-- delay, by the ledger's clock; an order no longer in the outbox (settled or
-- released meanwhile) is left out rather than brought back (XX). They all
-- get the same score, so one ZADD takes a chunk of them.
--
-- KEYS: outbox
-- ARGV: delay ms, order ids...
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

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
