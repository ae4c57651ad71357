-- Shared by bench/wrk/*.lua (loaded with dofile): the bearer token from $TOKEN, a
-- line-file reader, and a done() that prints one machine-readable line:
--   WRKJSON {"requests":…,"rps":…,"p50_ms":…,"p99_ms":…,"errors":…,"non2xx":…}
local M = {}

M.token = os.getenv("TOKEN") or ""

function M.lines(path)
  local t = {}
  local f = assert(io.open(path, "r"), "cannot open " .. tostring(path))
  for l in f:lines() do
    if l ~= "" then t[#t + 1] = l end
  end
  f:close()
  assert(#t > 0, path .. " is empty")
  return t
end

function M.headers()
  local h = { ["Accept"] = "application/json" }
  if M.token ~= "" then h["Authorization"] = "Bearer " .. M.token end
  return h
end

-- setup/init give every wrk thread its own random sequence.
local threads = 0
function M.setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function M.init(args)
  math.randomseed(os.time() + 7919 * (tid or 0))
end

function M.done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,' ..
    '"errors":%d,"non2xx":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,"bytes":%d}\n',
    summary.requests, secs, summary.requests / secs,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect + e.read + e.write + e.status + e.timeout, e.status, e.connect, e.read, e.write, e.timeout,
    summary.bytes))
end

return M
