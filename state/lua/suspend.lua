-- suspend: record that a flow run is about to suspend while it waits on this request, unless
-- the request is already decided (then the run must not suspend: it reads the decision).
-- ARGV[1] the flow run to resume once the request is decided (the gate's run, or its root)
-- ARGV[2] the orchestrator (Prefect server) the run lives on; only it may say the run is gone
-- Returns {'suspend', round, deadline ms}, {'decided'} or {'unknown'}. Each call is a new
-- round, so each suspend gets a key of its own (Prefect passes a key it has seen straight
-- through). Checked and recorded in one script: a decision lands either before (seen here)
-- or after (close() then finds `resume_run` and makes the resume due).

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local state = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms')
if state[1] ~= 'pending' then
  return {'decided'}
end
local round = redis.call('HINCRBY', KEYS[2], 'suspend_round', 1)
redis.call('HSET', KEYS[2], 'resume_run', ARGV[1], 'resume_server', ARGV[2] or '')
redis.call('HDEL', KEYS[2], 'resume_due', 'resume_missing')
audit({event = 'suspended', at = now_ms(), flow_run_id = ARGV[1], round = round})
return {'suspend', tostring(round), state[2]}
