-- open.lua creates a sale (or one stock bucket of it), or refreshes the
-- window and price of a live one without touching its stock.
--
-- KEYS: sale
-- ARGV: total, starts_ms, ends_ms, price, buckets
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'stock', ARGV[1], 'total', ARGV[1],
    'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4], 'gen', 0, 'buckets', ARGV[5])
  return $OPEN_CREATED
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[2], 'ends_ms', ARGV[3], 'price', ARGV[4], 'buckets', ARGV[5])
return $OPEN_REFRESHED
