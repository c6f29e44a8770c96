-- Many signed-in viewers on the same URL: each request carries the next
-- session cookie from the file named by BENCH_COOKIES (one sessionid a line),
-- so every request of a round robin over N sessions is a different viewer.
-- Extra headers given with -H (a Range) are kept.

dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local cookies = {}
local index = 0

function init(args)
   for line in io.lines(os.getenv("BENCH_COOKIES")) do
      if #line > 0 then cookies[#cookies + 1] = line end
   end
   -- Threads start at different places in the list; BENCH_OFFSET moves them all
   -- (a run that goes on where the previous one stopped).
   index = (id or 0) * 7919 + (tonumber(os.getenv("BENCH_OFFSET")) or 0)
end

function setup(thread)
   setup_count = (setup_count or 0) + 1
   thread:set("id", setup_count - 1)
end

function request()
   index = index + 1
   local headers = {}
   for name, value in pairs(wrk.headers) do headers[name] = value end
   headers["Cookie"] = "sessionid=" .. cookies[(index % #cookies) + 1]
   return wrk.format(nil, nil, headers)
end
