-- (b) GET /api/v1/companies?q=TERM with terms from $TERMS_FILE (already URL-encoded,
-- one a line): name words, name prefixes and tickers of the seeded companies.
local C = dofile((os.getenv("WRK_DIR") or "bench/wrk") .. "/common.lua")
local terms = C.lines(os.getenv("TERMS_FILE"))
local headers = C.headers()

request = function()
  return wrk.format("GET", "/api/v1/companies?q=" .. terms[math.random(#terms)], headers)
end

setup, init, done = C.setup, C.init, C.done
