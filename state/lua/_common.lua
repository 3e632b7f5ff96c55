-- Shared prelude, prepended to every request script.
-- KEYS[1] spec (string), KEYS[2] state (hash), KEYS[3] audit (list), KEYS[4] done (list)
-- The server clock decides every time, so clients with skewed clocks cannot cheat a deadline.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function audit(entry)
  redis.call('RPUSH', KEYS[3], cjson.encode(entry))
end

-- Closing is the one place a request leaves `pending`: it records the outcome, writes the
-- final audit entry, wakes every waiter (BLPOP on `done`) and starts the retention clock.
local function close(status, approved, by, reason, now, retention_ms)
  redis.call('HSET', KEYS[2], 'status', status, 'approved', approved and '1' or '0',
             'decided_ms', now)
  local entry = {event = status, at = now, status = status, approved = approved}
  if by and by ~= '' then
    redis.call('HSET', KEYS[2], 'decided_by', by)
    entry.user = by
  end
  if reason and reason ~= '' then
    redis.call('HSET', KEYS[2], 'reason', reason)
    entry.reason = reason
  end
  audit(entry)
  redis.call('RPUSH', KEYS[4], '1')
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], retention_ms)
  end
end
