-- close: end a pending request without a quorum vote.
-- ARGV[1] mode: 'expire' (only once due; applies the timeout outcome, unless a tier's quorum
--                         was met before the deadline: then approved as 'settle' would)
--               'cancel' (by the requester, or anyone when ARGV[6] is '1'),
--               'resolve' (a system decision, e.g. auto-approval below a threshold)
--               'settle' (approve when an escalation tier's quorum, by now, is already met
--                         by the approvals counted; NOT_DUE otherwise or once overdue)
-- ARGV[2] user or ''   ARGV[3] reason or ''   ARGV[4] retention ms
-- ARGV[5] 'approved'|'rejected' for resolve    ARGV[6] force 1/0
-- Returns {status}; status is one of CloseStatus.

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown'}
end
local state = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', 'requester', 'timeout_outcome')
if state[1] ~= 'pending' then
  return {'already_closed'}
end
local mode, user, reason = ARGV[1], ARGV[2], ARGV[3]
local retention = tonumber(ARGV[4])
local now = now_ms()
if mode == 'expire' then
  local deadline = tonumber(state[2])
  if now < deadline then
    return {'not_due'}
  end
  -- A tier whose quorum was met before the deadline approved the request at its time; only
  -- a request no tier settled times out.
  if not settle_by_tier(math.min(now, deadline - 1), retention) then
    close('timed_out', state[4] == 'approve', '', reason, now, retention)
  end
elseif mode == 'cancel' then
  if ARGV[6] ~= '1' and user ~= state[3] then
    return {'not_requester'}
  end
  close('cancelled', false, user, reason, now, retention)
elseif mode == 'resolve' then
  close(ARGV[5], ARGV[5] == 'approved', user, reason, now, retention)
elseif mode == 'settle' then
  if now >= tonumber(state[2]) or not settle_by_tier(now, retention) then
    return {'not_due'}
  end
else
  return redis.error_reply('close: unknown mode ' .. mode)
end
return {'closed_now'}
