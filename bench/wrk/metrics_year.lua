-- (c) GET /api/v1/companies/{id}/metrics?metric=$METRIC&from=$FROM&to=$TO&bucket=1d&agg=avg
-- for random ids from $IDS_FILE: one year of a daily metric in 1-day buckets.
local C = dofile((os.getenv("WRK_DIR") or "bench/wrk") .. "/common.lua")
local ids = C.lines(os.getenv("IDS_FILE"))
local headers = C.headers()
local qs = "?metric=" .. (os.getenv("METRIC") or "share_price") .. "&from=" .. os.getenv("FROM") ..
  "&to=" .. os.getenv("TO") .. "&bucket=1d&agg=avg"

request = function()
  return wrk.format("GET", "/api/v1/companies/" .. ids[math.random(#ids)] .. "/metrics" .. qs, headers)
end

setup, init, done = C.setup, C.init, C.done
