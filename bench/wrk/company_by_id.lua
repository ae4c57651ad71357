-- (a) GET /api/v1/companies/{id} with random ids from $IDS_FILE (one uuid a line).
local C = dofile((os.getenv("WRK_DIR") or "bench/wrk") .. "/common.lua")
local ids = C.lines(os.getenv("IDS_FILE"))
local headers = C.headers()

request = function()
  return wrk.format("GET", "/api/v1/companies/" .. ids[math.random(#ids)], headers)
end

setup, init, done = C.setup, C.init, C.done
