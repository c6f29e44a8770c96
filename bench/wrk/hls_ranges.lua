-- bench-hls: a player's segment requests. Each request is the next 6 s
-- segment's byte range of the file (BENCH_HLS_SIZE bytes, BENCH_HLS_SEGMENT a
-- segment), wrapping at the end; each thread starts at its own place, so the
-- connections walk the file like players at different positions. With
-- BENCH_HLS_COOKIE set, every request carries it (the viewer cookie a signed
-- URL is bound to). Bodies are not read into Lua (no response()): wrk counts
-- bytes, and any status >= 400 is an error that fails the run.

dofile(os.getenv("BENCH_WRK_DIR") .. "/report.lua")

local size = tonumber(os.getenv("BENCH_HLS_SIZE"))
local segment = tonumber(os.getenv("BENCH_HLS_SEGMENT"))
local cookie = os.getenv("BENCH_HLS_COOKIE") or ""
local segments = math.floor(size / segment)
local index = 0

function setup(thread)
   setup_count = (setup_count or 0) + 1
   thread:set("id", setup_count - 1)
end

function init(args)
   index = ((id or 0) * 17) % segments
end

function request()
   local start = (index % segments) * segment
   index = index + 1
   local headers = {}
   for name, value in pairs(wrk.headers) do headers[name] = value end
   headers["Range"] = string.format("bytes=%d-%d", start, start + segment - 1)
   if cookie ~= "" then headers["Cookie"] = cookie end
   return wrk.format("GET", nil, headers)
end
