-- wrk script of scripts/bench: POSTs JSON-RPC bodies and reports percentiles wrk does not print.
--
-- Environment:
--   BENCH_BODIES    file with one JSON-RPC body per line (required). One line: wrk's static request
--                   (no Lua per request). Several: each connection cycles through them.
--   BENCH_AUTH      optional Authorization header value (e.g. "Bearer id.secret").
--   BENCH_DELAY_MS  optional pacing: each connection waits this long after a reply before its next
--                   request (wrk's delay()), so C connections offer about C / (delay + latency) req/s.
--                   wrk measures latency from the write of a request, so the wait is not counted.
--
-- done() prints one line `BENCH_RESULT {json}`: requests, duration, errors and latency percentiles
-- in microseconds (p50, p75, p90, p99, p99.9, max).

local path = os.getenv("BENCH_BODIES")
if path == nil or path == "" then
  error("BENCH_BODIES is not set")
end

local bodies = {}
for line in io.lines(path) do
  if line ~= "" then
    bodies[#bodies + 1] = line
  end
end
if #bodies == 0 then
  error("no bodies in " .. path)
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local auth = os.getenv("BENCH_AUTH")
if auth ~= nil and auth ~= "" then
  wrk.headers["Authorization"] = auth
end

if #bodies == 1 then
  wrk.body = bodies[1]
else
  local requests = {}
  local next_index = 0
  local thread_no = 0

  function setup(thread)
    thread:set("thread_no", thread_no)
    thread_no = thread_no + 1
  end

  function init(args)
    for i, b in ipairs(bodies) do
      requests[i] = wrk.format(nil, nil, nil, b)
    end
    next_index = (thread_no or 0) % #bodies
  end

  function request()
    next_index = next_index % #requests + 1
    return requests[next_index]
  end
end

local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace ~= nil and pace > 0 then
  function delay()
    return pace
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p75":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(75), latency:percentile(90),
    latency:percentile(99), latency:percentile(99.9), latency.max))
end
