-- create: store a new request unless one with this id exists (idempotency).
-- ARGV[1] spec JSON        ARGV[2] requester or ''     ARGV[3] quorum
-- ARGV[4] allow_self 1/0   ARGV[5] timeout outcome     ARGV[6] timeout ms or ''
-- ARGV[7] absolute deadline ms or ''                   ARGV[8] retention ms
-- ARGV[9] open 1/0         ARGV[10] n approvers, then the approver ids,
--                          then n groups, then the group ids,
--                          then remind every ms or '', remind limit,
--                          then n escalation tiers, each: after ms, quorum or '', n people,
--                          their ids
-- Returns {'created'|'exists'|'deadline_past', deadline_ms, remind due ms or '',
--          escalation due ms or ''}

if redis.call('EXISTS', KEYS[2]) == 1 then
  local st = redis.call('HMGET', KEYS[2], 'deadline_ms', 'remind_due', 'esc_due')
  return {'exists', st[1], st[2] or '', st[3] or ''}
end
local now = now_ms()
local deadline
if ARGV[7] ~= '' then
  deadline = tonumber(ARGV[7])
else
  deadline = now + tonumber(ARGV[6])
end
if deadline <= now then
  return {'deadline_past', tostring(deadline), '', ''}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'status', 'pending', 'requester', ARGV[2], 'quorum', ARGV[3],
           'allow_self', ARGV[4], 'timeout_outcome', ARGV[5], 'created_ms', now,
           'deadline_ms', deadline, 'open', ARGV[9], 'approvals', 0)
local i = 10
local n = tonumber(ARGV[i])
for j = 1, n do
  redis.call('HSET', KEYS[2], 'approver:' .. ARGV[i + j], '1')
end
i = i + n + 1
n = tonumber(ARGV[i])
for j = 1, n do
  redis.call('HSET', KEYS[2], 'group:' .. ARGV[i + j], '1')
end
i = i + n + 1
-- Scheduled actions: the state holds when each is next due (the schedule sets are hints).
local remind_due = ''
if ARGV[i] ~= '' then
  remind_due = now + tonumber(ARGV[i])
  if remind_due >= deadline then remind_due = '' end
  redis.call('HSET', KEYS[2], 'remind_every', ARGV[i], 'remind_limit', ARGV[i + 1], 'reminders', 0)
  if remind_due ~= '' then redis.call('HSET', KEYS[2], 'remind_due', remind_due) end
end
i = i + 2
local tiers = tonumber(ARGV[i])
local esc_due = ''
redis.call('HSET', KEYS[2], 'tiers', tiers, 'tiers_reached', 0)
i = i + 1
for t = 1, tiers do
  local at = now + tonumber(ARGV[i])
  redis.call('HSET', KEYS[2], 'tier_at:' .. t, at)
  -- The approvals needed from this tier's time on (decide.lua, quorum_at in _common.lua).
  if ARGV[i + 1] ~= '' then redis.call('HSET', KEYS[2], 'tier_quorum:' .. t, ARGV[i + 1]) end
  i = i + 1
  if t == 1 and at < deadline then
    esc_due = at
    redis.call('HSET', KEYS[2], 'esc_due', at)
  end
  -- `esc:<id>`: when that user or group may first vote; the earliest tier naming it wins.
  for j = 1, tonumber(ARGV[i + 1]) do
    local field = 'esc:' .. ARGV[i + 1 + j]
    local known = redis.call('HGET', KEYS[2], field)
    if not known or tonumber(known) > at then redis.call('HSET', KEYS[2], field, at) end
  end
  i = i + 2 + tonumber(ARGV[i + 1])
end
local entry = {event = 'created', at = now}
-- The policy rule and hash that routed the request belong to its audit trail.
local spec = cjson.decode(ARGV[1])
if type(spec.policy_rule) == 'string' then entry.policy_rule = spec.policy_rule end
if type(spec.policy_hash) == 'string' then entry.policy_hash = spec.policy_hash end
if ARGV[2] ~= '' then entry.user = ARGV[2] end
audit(entry)
-- A pending request lives until its deadline plus the retention, even if no sweeper runs.
local expire_at = deadline + tonumber(ARGV[8])
for k = 1, 3 do
  redis.call('PEXPIREAT', KEYS[k], expire_at)
end
return {'created', tostring(deadline), tostring(remind_due), tostring(esc_due)}
