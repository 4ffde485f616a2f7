-- wrk script for bench/rest_core.py. Arguments after `--`: MODE FILE [PREFIX] STATUS...
--   paths FILE         GET a random path per request, one path (relative to the URL) a line
--   post FILE          POST FILE's content (a FHIR resource) to the URL
--   put FILE PREFIX POOL  PUT FILE's content, a resource whose "id" is "__ID__", to URL/<id>
--                      with the id substituted: PREFIX-<thread>-<n mod POOL>, n counting
--                      up per thread, so each thread updates its own POOL resources in turn
-- STATUS...: the expected response codes; any other is counted as unexpected.
-- done() prints one line, `wrk-result {json}`, for rest_core.py to parse.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("index", #threads)
end

local function slurp(name)
  local f = assert(io.open(name, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

function init(args)
  local mode, file = args[1], args[2]
  local base = wrk.path:gsub("/$", "")
  local first_status = 3
  if mode == "paths" then
    local paths = {}
    for line in slurp(file):gmatch("[^\n]+") do
      paths[#paths + 1] = base .. "/" .. line
    end
    math.randomseed(os.time() * 100 + index)
    request = function()
      return wrk.format("GET", paths[math.random(#paths)])
    end
  elseif mode == "post" then
    -- the same request every time: wrk formats it once
    wrk.method, wrk.body = "POST", slurp(file)
    wrk.headers["Content-Type"] = "application/fhir+json"
  elseif mode == "put" then
    local template, placeholder = slurp(file), '"__ID__"'
    local at = assert(template:find(placeholder, 1, true), "no " .. placeholder .. " in " .. file)
    local before, after = template:sub(1, at), template:sub(at + #placeholder - 1)
    local prefix, pool, n = args[3] .. "-" .. index .. "-", tonumber(args[4]), 0
    first_status = 5
    wrk.headers["Content-Type"] = "application/fhir+json"
    request = function()
      n = n + 1
      local id = prefix .. (n % pool)
      return wrk.format("PUT", base .. "/" .. id, nil, before .. id .. after)
    end
  else
    error("unknown mode " .. tostring(mode))
  end
  expected, unexpected, first_unexpected = {}, 0, ""
  for i = first_status, #args do
    expected[tonumber(args[i])] = true
  end
end

function response(status, headers, body)
  if not expected[status] then
    unexpected = unexpected + 1
    if first_unexpected == "" then
      first_unexpected = status .. " " .. body:sub(1, 200)
    end
  end
end

function done(summary, latency, requests)
  local unexpected, first = 0, ""
  for _, thread in ipairs(threads) do
    unexpected = unexpected + thread:get("unexpected")
    if first == "" then
      first = thread:get("first_unexpected")
    end
  end
  local e = summary.errors
  io.write(string.format(
    'wrk-result {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, '
      .. '"connect": %d, "read": %d, "write": %d, "timeout": %d, "status": %d, '
      .. '"unexpected": %d, "first_unexpected": "%s"}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
    e.connect, e.read, e.write, e.timeout, e.status, unexpected,
    (first:gsub('[%c"\\]', "?"))
  ))
end
