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
  -- A flow run suspended on this request is owed a resume: due now, in the same script as the
  -- decision, so no decision can leave its run suspended (state/resuming.py fires it).
  if redis.call('HEXISTS', KEYS[2], 'resume_run') == 1 then
    redis.call('HSET', KEYS[2], 'resume_due', now)
  end
  redis.call('RPUSH', KEYS[4], '1')
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], retention_ms)
  end
end

-- The approvals needed at `now`: the quorum of the latest escalation tier come by then that
-- sets one (`tier_quorum:<n>`), else the request's own; and that tier's number (0: none).
local function quorum_at(now)
  local st = redis.call('HMGET', KEYS[2], 'quorum', 'tiers')
  local quorum, from = tonumber(st[1]), 0
  for t = 1, tonumber(st[2] or '0') do
    local tier = redis.call('HMGET', KEYS[2], 'tier_at:' .. t, 'tier_quorum:' .. t)
    if tonumber(tier[1]) > now then break end
    if tier[2] then quorum, from = tonumber(tier[2]), t end
  end
  return quorum, from
end

-- A tier that lowered the quorum to the approvals already counted approved the request at its
-- time: close it so, saying why. Returns true when it closed the request.
local function settle_by_tier(now, retention_ms)
  local quorum, tier = quorum_at(now)
  if tier == 0 then return false end
  local approvals = tonumber(redis.call('HGET', KEYS[2], 'approvals'))
  if approvals < quorum then return false end
  close('approved', true, '', 'escalation tier ' .. tier .. ' lowered the quorum to ' .. quorum
        .. ' and ' .. approvals .. ' approval' .. (approvals == 1 and ' was' or 's were')
        .. ' already counted', now, retention_ms)
  return true
end
