-- set_window.lua moves the window of a live sale.
--
-- KEYS: sale
-- ARGV: starts_ms, ends_ms
--
-- Capitalised words after a dollar sign are reply codes, replaced at load
-- by the constants in scripts.go, so Go and Lua cannot drift apart.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return $WINDOW_NOT_FOUND
end
redis.call('HSET', KEYS[1], 'starts_ms', ARGV[1], 'ends_ms', ARGV[2])
return $WINDOW_SET
