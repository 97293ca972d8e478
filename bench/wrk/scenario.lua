-- One wrk script for every scenario (BENCH_SCENARIO): list, list_project, list_label, get,
-- create, patch, changes, create_idem, mixed, login, health. BENCH_DATA is a TSV of
-- "token<TAB>task id<TAB>email<TAB>password<TAB>project id<TAB>changes cursor" lines, one per
-- seeded user; each
-- request picks a random user. BENCH_DELAY_MS paces each
-- connection (used for the latency-at-half-load runs).

local scenario = os.getenv("BENCH_SCENARIO") or "list"
local data_path = os.getenv("BENCH_DATA")
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
local users = {}
local priorities = { "low", "medium", "high", "urgent" }
local json = { ["Content-Type"] = "application/json" }
local sent = 0

function init(args)
  -- Threads start together: mix in the thread's table address so they don't share a sequence.
  math.randomseed(os.time() * 1000 + (tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000))
  for line in io.lines(data_path) do
    local token, task, email, password, project, cursor =
      line:match("([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)\t([^\t]+)")
    users[#users + 1] = { auth = "Bearer " .. token, task = task, email = email, password = password,
                          project = project, cursor = cursor }
  end
end

local function with_auth(user, extra)
  local headers = { Authorization = user.auth }
  if extra then
    for k, v in pairs(extra) do headers[k] = v end
  end
  return headers
end

function request()
  local user = users[math.random(#users)]
  local kind = scenario
  if kind == "mixed" then
    -- 80% reads, 20% writes.
    local r = math.random(100)
    if r <= 40 then kind = "list" elseif r <= 80 then kind = "get" elseif r <= 90 then kind = "create" else kind = "patch" end
  end
  if kind == "list" then
    return wrk.format("GET", "/tasks?limit=20", with_auth(user))
  elseif kind == "list_project" then
    return wrk.format("GET", "/tasks?limit=20&project_id=" .. user.project, with_auth(user))
  elseif kind == "list_label" then
    return wrk.format("GET", "/tasks?limit=20&label=work", with_auth(user))
  elseif kind == "get" then
    return wrk.format("GET", "/tasks/" .. user.task, with_auth(user))
  elseif kind == "create" then
    return wrk.format("POST", "/tasks", with_auth(user, json),
      '{"title":"Benchmark task","description":"created under load","priority":"high","due_at":"2027-01-15T09:00:00Z"}')
  elseif kind == "create_idem" then
    -- A fresh key per request: every one creates (the first-time path of a keyed create).
    sent = sent + 1
    local key = string.format("bench-%d-%d", sent, math.random(1000000000))
    return wrk.format("POST", "/tasks", with_auth(user, { ["Content-Type"] = "application/json",
      ["Idempotency-Key"] = key }),
      '{"title":"Benchmark task","description":"created under load","priority":"high","due_at":"2027-01-15T09:00:00Z"}')
  elseif kind == "changes" then
    return wrk.format("GET", "/changes?limit=100&since=" .. user.cursor, with_auth(user))
  elseif kind == "patch" then
    return wrk.format("PATCH", "/tasks/" .. user.task, with_auth(user, json),
      '{"priority":"' .. priorities[math.random(4)] .. '"}')
  elseif kind == "login" then
    return wrk.format("POST", "/auth/login", json,
      '{"email":"' .. user.email .. '","password":"' .. user.password .. '"}')
  else
    return wrk.format("GET", "/health")
  end
end

if pace > 0 then
  function delay() return pace end
end

function done(summary, latency, requests)
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,"timeouts":%d,'
      .. '"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
