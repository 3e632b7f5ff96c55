-- decide: record one vote, atomically, and close the request when it is settled.
-- ARGV[1] user   ARGV[2] 'approve'|'reject'   ARGV[3] reason or ''   ARGV[4] retention ms
-- ARGV[5..] Slack user groups the user belongs to (resolved by the caller)
-- Returns {status, approvals so far}; status is one of DecideStatus ('settled': no vote
-- recorded, a tier's lower quorum had already been met, and the request closed approved).

if redis.call('EXISTS', KEYS[2]) == 0 then
  return {'unknown', '0'}
end
local state = redis.call('HMGET', KEYS[2], 'status', 'deadline_ms', 'open', 'requester',
                         'allow_self', 'quorum', 'approvals')
local approvals = state[7]
if state[1] ~= 'pending' then
  return {'closed', approvals}
end
local user, vote = ARGV[1], ARGV[2]
local now = now_ms()
if now >= tonumber(state[2]) then
  return {'expired', approvals}
end
-- The quorum in force is the latest escalation tier's, by this clock: when a tier lowered it
-- to the approvals already counted, the request was approved at that time, whatever this
-- click says; it closes so now if no sweeper has closed it yet. `settled`, not `approved`:
-- the clicker's vote was not recorded, whoever they are, and they must be told so.
if settle_by_tier(now, tonumber(ARGV[4])) then
  return {'settled', approvals}
end
-- An escalation tier's people may vote from its time on, by this clock, whether or not a
-- sweeper has announced the tier yet.
local function escalated(who)
  local at = redis.call('HGET', KEYS[2], 'esc:' .. who)
  return at ~= false and tonumber(at) <= now
end
local eligible = state[3] == '1' or redis.call('HEXISTS', KEYS[2], 'approver:' .. user) == 1
  or escalated(user)
if not eligible then
  for i = 5, #ARGV do
    if redis.call('HEXISTS', KEYS[2], 'group:' .. ARGV[i]) == 1 or escalated(ARGV[i]) then
      eligible = true
      break
    end
  end
end
if not eligible then
  return {'not_eligible', approvals}
end
if vote == 'approve' and user == state[4] and state[5] ~= '1' then
  return {'self_approval', approvals}
end
if redis.call('HSETNX', KEYS[2], 'vote:' .. user, vote .. ':' .. now) == 0 then
  return {'duplicate_vote', approvals}
end
local entry = {event = 'vote', at = now, user = user, vote = vote}
if ARGV[3] ~= '' then entry.reason = ARGV[3] end
audit(entry)
local retention = tonumber(ARGV[4])
if vote == 'reject' then
  close('rejected', false, user, ARGV[3], now, retention)
  return {'rejected', approvals}
end
approvals = redis.call('HINCRBY', KEYS[2], 'approvals', 1)
if approvals >= quorum_at(now) then
  close('approved', true, user, '', now, retention)
  return {'approved', tostring(approvals)}
end
return {'recorded', tostring(approvals)}
