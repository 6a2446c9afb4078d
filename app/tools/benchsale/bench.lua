-- bench.lua drives every benchsale scenario, so the load generator does the
-- same work per request in all of them: each request carries the next user
-- token of this thread's slice, and every response's status (plus the JSON
-- error code for non-2xx) is counted.
--
-- Arguments after "--": method path tokens_file record_len per_thread [limit]
-- The tokens file holds fixed-width lines, so thread k reads its disjoint
-- slice [k*per_thread, (k+1)*per_thread) with one seek. A limit > 0 cycles
-- over the slice's first limit tokens only (users who joined a line).

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   threads[#threads + 1] = thread
end

function init(args)
   local method, path, file = args[1], args[2], args[3]
   local reclen, per = tonumber(args[4]), tonumber(args[5])
   local take = per
   local limit = tonumber(args[6] or "0") or 0
   if limit > 0 and limit < per then
      take = limit
   end
   local host = wrk.headers["Host"] or (wrk.host .. ":" .. wrk.port)
   pre = method .. " " .. path .. " HTTP/1.1\r\nHost: " .. host .. "\r\nAuthorization: Bearer "
   post = "\r\n\r\n"
   if method == "POST" then
      post = "\r\nContent-Length: 0\r\n\r\n"
   end
   -- The slice stays one string and each request cuts its token out of it:
   -- wrk starts thread 0 before it calls init on thread 1, so a slow init
   -- (splitting 300k lines into a table took ~0.3 s) would let thread 0
   -- send requests that are counted but fall before wrk's clock starts.
   local f = assert(io.open(file, "rb"))
   f:seek("set", id * per * reclen)
   data = f:read(take * reclen) or ""
   f:close()
   rec = reclen
   toklen = reclen - 1
   n = math.floor(#data / reclen)
   if n == 0 then
      error("benchsale: no tokens for thread " .. id)
   end
   i = 0
   wrapped = 0
   counts = {}
end

function request()
   if i >= n then
      i = 0
      wrapped = wrapped + 1
   end
   local at = i * rec + 1
   i = i + 1
   return pre .. data:sub(at, at + toklen - 1) .. post
end

-- keys remembers, per status, the count key of each refusal body seen, so
-- a spike of one fixed body (409 sold_out, 429 rate_limited) costs the load
-- generator two table lookups per response, about what a 200 costs, not a
-- pattern match and a new string: what wrk spends is taken from the system
-- it measures. Bodies that name an order differ each time, so at most 64
-- are remembered.
local keys, nkeys = {}, 0

function response(status, headers, body)
   local k = status
   if status >= 300 then
      body = body or ""
      local seen = keys[status]
      if not seen then
         seen = {}
         keys[status] = seen
      end
      k = seen[body]
      if not k then
         k = status .. ":" .. (body:match('"error":"([%w_]+)"') or "?")
         if nkeys < 64 then
            seen[body] = k
            nkeys = nkeys + 1
         end
      end
   end
   counts[k] = (counts[k] or 0) + 1
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format("BENCH summary requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
      summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout))
   io.write(string.format("BENCH latency p50=%d p75=%d p90=%d p99=%d p99.9=%d max=%d mean=%.1f\n",
      latency:percentile(50), latency:percentile(75), latency:percentile(90),
      latency:percentile(99), latency:percentile(99.9), latency.max, latency.mean))
   for _, t in ipairs(threads) do
      local c = t:get("counts") or {}
      for k, v in pairs(c) do
         io.write(string.format("BENCH status %s %d\n", tostring(k), v))
      end
      io.write(string.format("BENCH thread id=%d tokens=%d wrapped=%d\n", t:get("id"), t:get("n") or 0, t:get("wrapped") or 0))
   end
end
