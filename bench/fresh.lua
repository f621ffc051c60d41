-- wrk script for the "fresh" run: every request carries a token the gateway has never seen.
-- usage: wrk ... -s bench/fresh.lua URL -- /tmp/gwbench/fresh/tokens.txt
-- The token file must hold more tokens than the run sends (run-gateway.sh mints enough and
-- restarts the gateway before each fresh run, so its cache starts empty). Requests are built in
-- init() as cold.lua does, so the generator costs the same per request. done() prints how many
-- times the list wrapped (a wrapped run is not all misses: mint more tokens or shorten the run).

local reqs = {}
local n = 0
local i = 0
-- global, so done() can read it with thread:get()
wrapped = 0
local first = 0
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path = args[1] or "/tmp/gwbench/fresh/tokens.txt"
   local f = assert(io.open(path, "r"))
   for line in f:lines() do
      if #line > 0 then
         n = n + 1
         reqs[n] = wrk.format(nil, nil, { ["Authorization"] = "Bearer " .. line })
      end
   end
   f:close()
   assert(n > 0, "no tokens in " .. path)
   -- with several threads, each takes its own slice so no token is sent twice
   local nthreads = tonumber(args[2] or "1")
   local slice = math.floor(n / nthreads)
   first = (id or 0) * slice
   i = first
   n = first + slice
end

function request()
   i = i + 1
   if i > n then
      i = first + 1
      wrapped = wrapped + 1
   end
   return reqs[i]
end

function done(summary, latency, requests)
   for _, t in ipairs(threads) do
      io.write(string.format("fresh: thread %d wrapped %s times\n", t:get("id"), tostring(t:get("wrapped"))))
   end
   io.write(string.format("fresh: requests %d\n", summary.requests))
end
