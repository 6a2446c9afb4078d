-- bucket.lua reads one stock bucket in one atomic step: its figures, its
-- move counter, its open journal entries and, by mode, nothing more (0),
-- the pending and overdue counts (1), or every pending record too (2).
--
-- Counting the overdue reads every pending record, so mode 1 does it only
-- for at most ARGV[3] of them and answers overdue -1 above that: a worker
-- outage leaves a backlog of 100k pending orders, and a script that walks
-- them holds Redis's one thread for 50-70 ms, long enough to time out the
-- purchases queued behind it. The caller then counts in chunks
-- (countOverdue).
--
-- KEYS: sale, pending, moves
-- ARGV: mode, overdue ms, scan limit
-- Reply: {exists, stock, total, gen, starts_ms, ends_ms, price, mseq, now_ms,
-- pending, overdue, moves, move_id1, entry1, ..., order_id1, record1, ...}
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

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
