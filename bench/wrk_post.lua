-- wrk script: POST pre-signed WhatsApp webhook bodies, each a distinct message.
--
-- Usage: wrk -s wrk_post.lua <url> -- <bodies file> <thread count>
-- The bodies file has one "<X-Hub-Signature-256>\t<body>" line per webhook;
-- thread n of N posts lines n, n+N, n+2N... so no two threads post the same
-- message. At the end one "WRK_JSON {...}" line reports the run.

local next_thread_id = 0

function setup(thread)
  thread:set("thread_id", next_thread_id)
  next_thread_id = next_thread_id + 1
end

local signatures = {}
local bodies = {}
local count = 0
local index = 0

function init(args)
  local path = args[1]
  local threads = tonumber(args[2])
  local line_number = 0
  for line in io.lines(path) do
    if line_number % threads == thread_id then
      local tab = line:find("\t", 1, true)
      count = count + 1
      signatures[count] = line:sub(1, tab - 1)
      bodies[count] = line:sub(tab + 1)
    end
    line_number = line_number + 1
  end
end

function request()
  index = index % count + 1
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = signatures[index],
  }
  return wrk.format("POST", nil, headers, bodies[index])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"errors":{"connect":%d,"read":%d,'
      .. '"write":%d,"status":%d,"timeout":%d},"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
